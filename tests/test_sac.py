"""SAC: squashed-Gaussian log-probabilities, min backup, temperature, spaces, persistence, learning."""

from __future__ import annotations

import io
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from hydra.utils import instantiate
from omegaconf import OmegaConf

from rlrun.agents.sac import SAC
from rlrun.compose import CONF_DIR
from rlrun.config import validate_target
from rlrun.errors import ConfigError, IncompatibleSpaceError
from rlrun.replay.buffer import Batch, ReplayBuffer

OBS = spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
ACT = spaces.Box(np.array([0.0, -2.0], np.float32), np.array([1.0, 6.0], np.float32), dtype=np.float32)



def small_sac(**kw) -> SAC:
    args = dict(actor_hidden=[32, 32], critic_hidden=[32, 32], batch_size=32, seed=0)
    args.update(kw)
    return SAC(OBS, ACT, **args)


def random_batch(n: int = 32, weights: bool = False) -> Batch:
    g = torch.Generator().manual_seed(1)
    low, high = torch.as_tensor(ACT.low), torch.as_tensor(ACT.high)
    return Batch(
        obs=torch.rand(n, 3, generator=g) * 2 - 1,
        actions=low + (high - low) * torch.rand(n, 2, generator=g),
        rewards=torch.randn(n, generator=g),
        next_obs=torch.rand(n, 3, generator=g) * 2 - 1,
        dones=(torch.rand(n, generator=g) < 0.2).float(),
        discounts=torch.full((n,), 0.99),
        weights=torch.rand(n, generator=g) if weights else None,
        indices=np.arange(n),
    )


def test_log_prob_matches_tanh_transformed_normal():
    torch.manual_seed(0)
    agent = small_sac()
    obs = torch.rand(64, 3) * 2 - 1
    action, logp = agent.actor.sample(obs)
    mean, log_std = agent.actor(obs)
    dist = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp()), [torch.distributions.TanhTransform(cache_size=1)]
    )
    reference = dist.log_prob(action).sum(-1)
    ok = action.abs().max(-1).values < 0.999  # away from the saturated edge, where atanh loses precision
    torch.testing.assert_close(logp[ok], reference[ok], atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(agent.actor.log_prob(obs, action)[ok], logp[ok], atol=1e-3, rtol=1e-4)
    assert torch.all(action.abs() <= 1.0)


def test_actions_respect_asymmetric_bounds_and_eval_is_deterministic():
    agent = small_sac()
    rng = np.random.default_rng(0)
    for _ in range(200):
        obs = rng.uniform(-1, 1, 3).astype(np.float32)
        a = agent.act(obs, explore=True)
        assert a.shape == (2,) and a.dtype == np.float32 and ACT.contains(a)
    obs = np.array([0.1, -0.2, 0.3], np.float32)
    a1, a2 = agent.act(obs, explore=False), agent.act(obs, explore=False)
    np.testing.assert_array_equal(a1, a2)
    with torch.no_grad():
        squashed = agent.actor.deterministic(torch.as_tensor(obs)[None])[0].numpy()
    np.testing.assert_allclose(a1, squashed * (ACT.high - ACT.low) / 2 + (ACT.high + ACT.low) / 2, rtol=1e-6)


def test_target_uses_min_of_twin_target_critics_and_entropy_bonus():
    agent = small_sac(alpha=0.5, autotune=False)
    batch = random_batch()
    torch.manual_seed(7)
    y = agent.td_target(batch)
    torch.manual_seed(7)
    with torch.no_grad():
        a2, logp2 = agent.actor.sample(batch.next_obs)
        q = agent.critic_target(batch.next_obs, a2)  # [2, B]
        assert q.shape == (2, 32) and not torch.allclose(q[0], q[1])  # two independent critics
        v_next = torch.minimum(q[0], q[1]) - 0.5 * logp2
        expected = batch.rewards + batch.discounts * (1 - batch.dones) * v_next
    torch.testing.assert_close(y, expected)


def test_importance_weights_scale_the_critic_loss():
    agent = small_sac()
    batch = random_batch(weights=True)
    y = torch.zeros(32)
    loss, _, td = agent.critic_loss(batch, y)
    q = agent.critic(batch.obs, agent.normalise(batch.actions))
    expected = (q.pow(2) * batch.weights).mean(dim=1).sum()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(td, q.detach().abs().mean(dim=0))


def test_temperature_moves_toward_target_entropy_and_fixed_alpha_stays():
    torch.manual_seed(0)
    auto = small_sac(target_entropy=5.0, lr=1e-2)  # target far above a 2-d policy's entropy: alpha grows
    fixed = small_sac(autotune=False, alpha=0.3)
    batch = random_batch()
    for _ in range(30):
        out = auto.update(batch)
        fixed.update(batch)
    assert out["train/alpha"] > 0.2 * math.exp(0.2)
    assert float(fixed.alpha) == pytest.approx(0.3)
    low = small_sac(target_entropy=-50.0, lr=1e-2)  # far below: alpha shrinks
    for _ in range(30):
        out = low.update(batch)
    assert out["train/alpha"] < 0.2 * math.exp(-0.2)
    assert set(out) >= {"loss/critic", "loss/actor", "loss/alpha", "train/alpha", "train/entropy", "td_error"}
    assert out["td_error"].shape == (32,)


def test_actor_step_leaves_critic_weights_alone():
    agent = small_sac()
    before = [p.detach().clone() for p in agent.critic.parameters()]
    batch = random_batch()
    loss, _ = agent.policy_loss(batch.obs, batch.actions)
    agent.actor_opt.zero_grad()
    loss.backward()
    assert all(p.grad is None for p in agent.critic.parameters())
    assert all(p.requires_grad for p in agent.critic.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, agent.critic.parameters(), strict=True))


@pytest.mark.parametrize(
    "space",
    [spaces.Discrete(3), spaces.Tuple((spaces.Discrete(2), spaces.Box(-1, 1, (2,), np.float32)))],
)
def test_rejects_discrete_and_hybrid_spaces(space):
    with pytest.raises(IncompatibleSpaceError, match="SAC"):
        SAC(OBS, space)


def test_rejects_unbounded_box_and_bad_options():
    with pytest.raises(ConfigError, match="bounded"):
        SAC(OBS, spaces.Box(-np.inf, np.inf, (2,), np.float32))
    with pytest.raises(ConfigError, match="agent.tau"):
        small_sac(tau=0.0)
    with pytest.raises(ConfigError, match="agent.alpha"):
        small_sac(alpha=-1.0)


def test_checkpoint_round_trip_resumes_identically():
    a = small_sac()
    batch = random_batch()
    for _ in range(5):
        a.update(batch)
    raw = io.BytesIO()
    torch.save(a.state_dict(), raw)
    raw.seek(0)
    b = small_sac(seed=123)
    b.load_state_dict(torch.load(raw, weights_only=True))
    torch.manual_seed(3)
    out_a = a.update(batch)
    torch.manual_seed(3)
    out_b = b.update(batch)
    assert out_a["loss/critic"] == out_b["loss/critic"] and out_a["train/alpha"] == out_b["train/alpha"]
    obs = np.zeros(3, np.float32)
    np.testing.assert_array_equal(a.act(obs, False), b.act(obs, False))


def test_config_file_validates_and_instantiates():
    node = OmegaConf.load(CONF_DIR / "agent" / "sac.yaml")
    validate_target(node, "agent")
    agent = instantiate(node, _convert_="all", observation_space=OBS, action_space=ACT, device="cpu", seed=0)
    assert isinstance(agent, SAC) and agent.target_entropy == -2.0
    assert agent.actor_opt.param_groups[0]["lr"] == pytest.approx(3e-4)


def test_learns_a_contextual_bandit_quickly():
    """One-step task: reward -(a - target(s))^2 with target(s) = 0.8 s_0. The deterministic policy must
    land near the optimum after a few hundred updates (fast learning sanity check)."""
    torch.manual_seed(0)
    obs_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
    act_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
    agent = SAC(obs_space, act_space, actor_hidden=[64, 64], critic_hidden=[64, 64], lr=3e-3, batch_size=64,
                alpha=0.05)
    buf = ReplayBuffer(obs_space, act_space, capacity=5000, seed=0)
    rng = np.random.default_rng(0)
    for step in range(1500):
        s = rng.uniform(-1, 1, 3).astype(np.float32)
        a = agent.act(s, explore=True) if step >= 200 else rng.uniform(-1, 1, 1).astype(np.float32)
        r = -float((a[0] - 0.8 * s[0]) ** 2)
        buf.add(s, a, r, s, True, False)
        if step >= 200:
            agent.update(buf.sample(64))
    test = rng.uniform(-1, 1, (100, 3)).astype(np.float32)
    err = np.mean([(agent.act(s, False)[0] - 0.8 * s[0]) ** 2 for s in test])
    assert err < 0.01, err  # a random policy scores ~0.55, zero action ~0.21


@pytest.mark.slow
def test_pendulum_reaches_minus_200_within_20k_steps(tmp_path):
    """rl-zoo3's Pendulum-v1 SAC setting (lr 1e-3, otherwise defaults), through the real trainer."""
    from hydra import compose, initialize_config_dir

    from rlrun.trainer import Trainer

    overrides = ["env=gym", "env.id=Pendulum-v1", "agent=sac", "agent.lr=1e-3", "total_steps=20000",
                 "eval_every=0", "eval_episodes=10", "progress=false", "plots=false", "checkpoint_every=0"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    summary = Trainer(cfg, tmp_path).run()
    assert summary["final"]["return_mean"] >= -200, summary["final"]


def test_pendulum_spaces_are_accepted():
    env = gym.make("Pendulum-v1")
    agent = SAC(env.observation_space, env.action_space, actor_hidden=[8], critic_hidden=[8])
    obs, _ = env.reset(seed=0)
    assert env.action_space.contains(agent.act(obs, True))
