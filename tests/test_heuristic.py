"""agent=heuristic: the PI export controller reads everything from the observation and beats doing nothing."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from rlrun.agents.heuristic import ExportPI
from rlrun.envs.inverter import InverterEnv
from rlrun.envs.inverter.compare import Noop, evaluate
from rlrun.errors import IncompatibleSpaceError


def make(env: InverterEnv, **kw) -> ExportPI:
    return ExportPI(env.observation_space, env.action_space, capacity_w=[5000.0, 2500.0, 2500.0], **kw)


def test_pi_law_on_a_hand_made_observation():
    env = InverterEnv(episode_s=60)
    pi = make(env, kp=0.4, ki=0.15, margin_w=40.0, explore_noise=0.0)
    obs = np.zeros(30, dtype=np.float32)
    obs[1:4] = np.array([1000.0, -200.0, 0.0]) / 5000.0  # net per phase (+ export)
    obs[11 + 12: 11 + 15] = np.array([1000.0, 500.0, 2500.0]) / 5000.0  # newest command sent
    u = pi.control(obs)
    # first call: no error change yet, u = u_prev + ki * (net + margin), clipped to capacity
    np.testing.assert_allclose(u, [1000 + 0.15 * 1040, 500 + 0.15 * -160, 2500.0], rtol=1e-5)
    obs2 = obs.copy()
    obs2[1] = 500.0 / 5000.0
    u2 = pi.control(obs2)
    assert u2[0] == pytest.approx(1000 + 0.4 * (540 - 1040) + 0.15 * 540, rel=1e-5)
    a = pi.act(obs2, explore=False)
    assert a.dtype == np.float32 and np.all(np.abs(a) <= 1.0)


def test_pi_exports_far_less_than_doing_nothing_on_held_out_days():
    env = InverterEnv(split="test", episode_s=600)
    pi = evaluate(env, make(env, explore_noise=0.0), episodes=2, seed=1000)
    noop = evaluate(env, Noop(env), episodes=2, seed=1000)
    assert noop["export_kwh"] > 0.3
    assert pi["export_kwh"] < 0.1 * noop["export_kwh"]
    assert pi["over_diversion_kwh"] < 0.1 * noop["export_kwh"]
    assert pi["return"] > 3 * noop["return"]  # returns are negative


def test_tuned_gains_beat_the_untuned_simc_start():
    env = InverterEnv(split="train", episode_s=900)
    tuned = evaluate(env, make(env, explore_noise=0.0), episodes=3, seed=1000)
    simc = evaluate(env, make(env, kp=0.0909, ki=0.0909, explore_noise=0.0), episodes=3, seed=1000)
    assert tuned["return"] > simc["return"]


def test_exploration_noise_only_when_exploring():
    env = InverterEnv(episode_s=60)
    pi = make(env, explore_noise=0.1)
    obs, _ = env.reset(seed=0)
    a1 = pi.act(obs, explore=False)
    pi.on_episode_end()
    a2 = pi.act(obs, explore=False)
    pi.on_episode_end()
    a3 = pi.act(obs, explore=True)
    np.testing.assert_array_equal(a1, a2)
    assert not np.allclose(a1, a3)


def test_rejects_other_envs():
    box = spaces.Box(-1.0, 1.0, shape=(8,), dtype=np.float32)
    with pytest.raises(IncompatibleSpaceError, match="env=inverter"):
        ExportPI(box, spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32))


def test_gain_rule_keeps_the_sampled_loop_stable_at_every_delay():
    """SIMC's continuous x 5.5 / (d + 0.5) puts a pole outside the unit circle at small delays (at d = 0 the
    product of the two poles is -kp = -4.4); the schedule keeps the tuned loop's margin at every delay."""
    from rlrun.agents.heuristic import gain_scale, loop_radius

    tuned = loop_radius(0.4, 0.15, 5)
    assert tuned == pytest.approx(0.893, abs=1e-3)
    assert loop_radius(0.4 * 11, 0.15 * 11, 0) > 5  # SIMC's rescaling at delay 0: unstable
    assert loop_radius(0.4 * 5.5 / 1.5, 0.15 * 5.5 / 1.5, 1) > 1  # and at delay 1
    for d in range(0, 61):
        g = gain_scale(0.4, 0.15, 5, d)
        assert g <= 5.5 / (d + 0.5) + 1e-12
        # the tuned margin up to d = 12; beyond, no factor reaches it and the fastest one is taken
        assert loop_radius(0.4 * g, 0.15 * g, d) <= (tuned + 1e-6 if d <= 12 else 0.99)
    assert gain_scale(0.4, 0.15, 5, 5) == pytest.approx(1.0)
    assert gain_scale(0.4, 0.15, 5, 0) == pytest.approx(1.90, abs=0.01)  # kp = 0.76, ki = 0.28
    env = InverterEnv(delay_s=0, episode_s=60)
    assert make(env).kp == pytest.approx(0.4 * gain_scale(0.4, 0.15, 5, 0))
    assert make(env, gain_schedule=False).kp == 0.4


def test_pi_at_zero_delay_stays_stable_and_under_the_limit():
    """delay_s=0, held-out days: the scheduled PI exports little and spends few seconds over the 50 W limit,
    where SIMC's rescaled gains oscillate between all-on and all-off."""
    env = InverterEnv(split="test", delay_s=0, episode_s=600)
    pi = evaluate(env, make(env, explore_noise=0.0), episodes=3, seed=1000)
    simc = evaluate(env, make(env, kp=4.4, ki=1.65, explore_noise=0.0, gain_schedule=False), episodes=3,
                    seed=1000)
    noop = evaluate(env, Noop(env), episodes=3, seed=1000)
    assert pi["export_kwh"] < 0.02 * noop["export_kwh"]
    assert pi["over_limit_fraction"] < 0.2 and pi["longest_excursion_s"] < 30
    assert simc["over_limit_fraction"] > 2 * pi["over_limit_fraction"]
    assert pi["return"] > 3 * simc["return"]  # returns are negative


def test_exploration_noise_is_a_dither_not_integrated():
    """The read-back command includes the noise the PI added; the next step integrates from the PI's own
    command, so in a collected dataset the noise does not random-walk the slaves away from the operating point."""
    env = InverterEnv(episode_s=60)
    pi = make(env, explore_noise=0.1)
    obs = np.zeros(30, dtype=np.float32)
    obs[11 + 12: 11 + 15] = np.array([1000.0, 1000.0, 1000.0]) / 5000.0
    clean = make(env, explore_noise=0.1)
    u0 = clean.control(obs)
    sent = pi.act(obs, explore=True)
    sent_w = (sent.astype(np.float64) + 1.0) * 0.5 * 5000.0
    assert np.abs(sent_w - u0).max() > 10  # it did explore
    # next second: the env echoes the sent (noisy) command in the pending block; the PI must continue from
    # its own command u0, exactly as a noise-free PI that sent u0 would
    noisy, quiet = obs.copy(), obs.copy()
    noisy[11 + 12: 11 + 15] = (sent_w / 5000.0).astype(np.float32)
    quiet[11 + 12: 11 + 15] = (u0 / 5000.0).astype(np.float32)
    np.testing.assert_allclose(pi.control(noisy), clean.control(quiet), atol=1e-2)
