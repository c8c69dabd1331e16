"""PPO / A2C: the losses by hand, the action heads' log-probs, masking, the observation normaliser, persistence.

The learning checks (`slow`) train through rlrun's trainer with the shipped `+experiment=` configs.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from gymnasium import spaces
from scipy.stats import norm

from rlrun.agents.a2c import A2C
from rlrun.agents.ppo import (
    PPO,
    clipped_surrogate_loss,
    normalize_advantages,
    value_loss,
)
from rlrun.errors import ConfigError
from rlrun.replay.rollout import RolloutBuffer

OBS = spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
BOX = spaces.Box(-2.0, 2.0, shape=(2,), dtype=np.float32)


def roundtrip(state: dict) -> dict:
    """Through torch.save / torch.load(weights_only=True), as a checkpoint goes."""
    blob = io.BytesIO()
    torch.save(state, blob)
    blob.seek(0)
    return torch.load(blob, weights_only=True)


def scramble(agent: PPO, seed: int = 0) -> None:
    """Move the freshly initialised (near-uniform) policy somewhere less symmetric."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in agent.policy.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.5)


def fill(agent: PPO, num_envs: int = 3, seed: int = 0, masks: np.ndarray | None = None) -> RolloutBuffer:
    """A full rollout of random observations and rewards, collected by the agent."""
    rng = np.random.default_rng(seed)
    buf = RolloutBuffer(agent.n_steps, num_envs, agent.obs_dim, agent.raw_dim, agent.mask_dim)
    for _ in range(agent.n_steps):
        step = agent.policy_step(rng.normal(size=(num_envs, agent.obs_dim)), masks)
        buf.add(step, rng.normal(size=num_envs).astype(np.float32), (rng.random(num_envs) < 0.2).astype(np.float32),
                masks)
    buf.compute_advantages(agent.value(rng.normal(size=(num_envs, agent.obs_dim))), agent.gamma, agent.gae_lambda)
    return buf


# ---- the losses -------------------------------------------------------------------------------------------
def test_clipped_surrogate_matches_hand_computed_values_and_gradients() -> None:
    ratios = torch.tensor([1.5, 0.5, 1.1, 0.7])
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0])
    old = torch.tensor([-1.0, -2.0, -0.5, -3.0])
    new = (old + ratios.log()).requires_grad_(True)
    loss, clip_fraction, approx_kl = clipped_surrogate_loss(new, old, adv, 0.2)
    # min(rA, clip(r)A): 1.5 -> clipped 1.2; 0.5 -> 0.5 (the clip would raise it); -1.1 (inside); 0.7 -> -0.8
    assert loss.item() == pytest.approx(-(1.2 + 0.5 - 1.1 - 0.8) / 4, abs=1e-6)
    assert clip_fraction.item() == pytest.approx(0.75)
    kl = np.mean([(r - 1) - math.log(r) for r in (1.5, 0.5, 1.1, 0.7)])
    assert approx_kl.item() == pytest.approx(kl, rel=1e-5)
    loss.backward()
    # clipped terms carry no gradient; the others -A r / B with respect to log pi
    np.testing.assert_allclose(new.grad.numpy(), [0.0, -0.5 / 4, 1.1 / 4, 0.0], atol=1e-6)


def test_value_loss_clipped_and_unclipped_by_hand() -> None:
    values = torch.tensor([1.0, 2.0, 0.0])
    old = torch.tensor([0.5, 2.5, 0.1])
    returns = torch.tensor([1.2, 1.0, 0.3])
    # unclipped: (0.2^2 + 1^2 + 0.3^2) / 3
    assert value_loss(values, old, returns, None).item() == pytest.approx(1.13 / 3, abs=1e-6)
    # clipped predictions 0.7, 2.3, 0.0: (0.5^2 + 1.3^2 + 0.3^2) / 3
    assert value_loss(values, old, returns, 0.2).item() == pytest.approx(2.03 / 3, abs=1e-6)


def test_advantage_normalisation_is_per_batch_and_leaves_a_single_row_alone() -> None:
    a = normalize_advantages(torch.tensor([1.0, 2.0, 3.0, 6.0]))
    assert a.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert a.std().item() == pytest.approx(1.0, abs=1e-6)
    assert normalize_advantages(torch.tensor([5.0])).item() == 5.0


# ---- action heads -----------------------------------------------------------------------------------------
def test_tanh_squashing_log_prob_matches_numerical_density() -> None:
    """log pi of the pre-tanh u must be the log-density of y = tanh(u): d/dy P(tanh(U) <= y), numerically."""
    box = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
    agent = PPO(OBS, box, squash="tanh", log_std_init=-0.3, n_steps=4)
    out = torch.tensor([[0.4]])
    mu, sigma = 0.4, math.exp(-0.3)
    h = 1e-5
    for u in (-2.0, -0.3, 0.0, 0.9, 2.5):
        log_prob, _ = agent.head.evaluate(out, agent.policy.log_std.detach(), torch.tensor([[u]]), None)
        y = math.tanh(u)
        cdf = [norm.cdf((math.atanh(v) - mu) / sigma) for v in (y - h, y + h)]
        assert log_prob.item() == pytest.approx(math.log((cdf[1] - cdf[0]) / (2 * h)), abs=1e-4)
    far, _ = agent.head.evaluate(out, agent.policy.log_std.detach(), torch.tensor([[30.0]]), None)
    assert torch.isfinite(far).all()  # saturated tanh: no -inf / nan from log(1 - tanh^2)


def test_clip_squash_stores_unclipped_sample_and_clips_only_for_the_env() -> None:
    agent = PPO(OBS, BOX, log_std_init=2.0, n_steps=4)  # std e^2: most samples fall outside [-2, 2]
    step = agent.policy_step(np.zeros((64, 4)), None)
    actions = np.stack(step.actions)
    assert np.abs(step.raw).max() > 2.0
    assert actions.dtype == np.float32 and actions.shape == (64, 2)
    np.testing.assert_array_equal(actions, np.clip(step.raw, -2.0, 2.0))


def test_masked_discrete_never_picks_invalid_actions_and_log_probs_ignore_them() -> None:
    agent = PPO(OBS, spaces.Discrete(5), n_steps=4)
    scramble(agent)
    masks = np.zeros((300, 5), dtype=bool)
    masks[:, [1, 3]] = True
    masks[::3, 4] = True
    masks[7] = False  # no valid action at all: no NaN, any choice
    step = agent.policy_step(np.random.default_rng(0).normal(size=(300, 4)), masks)
    chosen = np.array(step.actions)
    rows = np.arange(300) != 7
    assert masks[rows, chosen[rows]].all()
    assert np.isfinite(step.log_probs).all()
    assert {1, 3, 4} <= set(chosen[rows].tolist())  # every valid action does get sampled

    obs = torch.randn(2, 4)
    out = agent.policy.actor(obs).detach()
    m = torch.tensor([[False, True, False, True, False], [True, True, True, True, True]])
    log_p = [agent.head.evaluate(out, agent.policy.log_std, torch.full((2, 1), float(a)), m)[0] for a in range(5)]
    log_p = torch.stack(log_p, dim=1)  # [2, 5]
    assert torch.isinf(log_p[0, [0, 2, 4]]).all()
    assert log_p[0, [1, 3]].exp().sum().item() == pytest.approx(1.0, abs=1e-6)  # mass only on valid actions
    expected = torch.log_softmax(out[0, [1, 3]], dim=0)
    assert torch.allclose(log_p[0, [1, 3]], expected, atol=1e-6)
    _, entropy = agent.head.evaluate(out, agent.policy.log_std, torch.ones(2, 1), m)
    p = expected.exp()
    assert entropy[0].item() == pytest.approx(-(p * p.log()).sum().item(), abs=1e-6)


def test_evaluation_masks_from_the_observation_tail() -> None:
    """act_batch gets no info dict: with action_mask=obs_tail the last n observation entries are the mask."""
    obs_space = spaces.Box(0.0, 1.0, shape=(7,), dtype=np.float32)
    agent = PPO(obs_space, spaces.Discrete(4), action_mask="obs_tail", n_steps=4)
    scramble(agent)
    rng = np.random.default_rng(1)
    obs = rng.random((200, 7)).astype(np.float32)
    obs[:, 3:] = 0.0
    valid = rng.integers(0, 4, size=200)
    obs[np.arange(200), 3 + valid] = 1.0  # exactly one valid action per row
    for explore in (False, True):
        assert agent.act_batch(obs, explore) == valid.tolist()


def test_hybrid_log_prob_is_categorical_plus_the_chosen_gaussian() -> None:
    space = spaces.Tuple((spaces.Discrete(3), spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)))
    agent = PPO(OBS, space, n_steps=4)
    scramble(agent)
    assert agent.raw_dim == 3 and agent.mask_dim is None
    step = agent.policy_step(np.random.default_rng(0).normal(size=(50, 4)), None)
    raw = torch.from_numpy(step.raw)
    out = agent.policy.actor(torch.from_numpy(step.obs)).detach()
    logits, means = out[:, :3], out[:, 3:].reshape(50, 3, 2)
    k = raw[:, 0].long()
    std = agent.policy.log_std.detach().view(3, 2).exp()
    expected = (torch.distributions.Categorical(logits=logits).log_prob(k)
                + torch.distributions.Normal(means[torch.arange(50), k], std[k]).log_prob(raw[:, 1:]).sum(-1))
    np.testing.assert_allclose(step.log_probs, expected.numpy(), atol=1e-5)
    for (kk, x), r in zip(step.actions, step.raw, strict=True):
        assert isinstance(kk, int) and kk == int(r[0])
        assert x.shape == (2,) and np.all(np.abs(x) <= 1.0)
    # the entropy: H(k) + sum_k pi(k) H(N_k)
    _, entropy = agent.head.evaluate(out, agent.policy.log_std.detach(), raw, None)
    cat = torch.distributions.Categorical(logits=logits)
    h_x = torch.distributions.Normal(torch.zeros(3, 2), std).entropy().sum(-1)
    assert torch.allclose(entropy, cat.entropy() + cat.probs @ h_x, atol=1e-5)


def test_hybrid_per_action_layout_scores_only_the_chosen_slice() -> None:
    space = spaces.Tuple((spaces.Discrete(3), spaces.Box(-1.0, 1.0, shape=(6,), dtype=np.float32)))
    agent = PPO(OBS, space, layout="per_action", n_steps=4)
    scramble(agent)
    out = agent.policy.actor(torch.randn(1, 4)).detach()
    log_std = agent.policy.log_std.detach()
    raw = torch.tensor([[1.0, 0.3, -0.2, 0.5, 0.1, -0.4, 0.9]])
    other = raw.clone()
    other[0, [1, 2, 5, 6]] = torch.tensor([5.0, -5.0, 5.0, -5.0])  # slices of choices 0 and 2: ignored
    lp, _ = agent.head.evaluate(out, log_std, raw, None)
    lp_other, _ = agent.head.evaluate(out, log_std, other, None)
    assert lp.item() == pytest.approx(lp_other.item(), abs=1e-6)
    mu = out[0, 3:].reshape(3, 6)[1, 2:4]
    sd = log_std.view(3, 6)[1, 2:4].exp()
    expected = torch.log_softmax(out[0, :3], 0)[1] + torch.distributions.Normal(mu, sd).log_prob(raw[0, 3:5]).sum()
    assert lp.item() == pytest.approx(expected.item(), abs=1e-5)
    with pytest.raises(ConfigError, match="param_sizes"):
        PPO(OBS, space, layout="per_action", param_sizes=[2, 2, 1], n_steps=4)


@pytest.mark.parametrize("case", ["clip", "tanh", "discrete_masked", "hybrid", "hybrid_tanh"])
def test_stored_rollout_reproduces_the_acting_log_probs(case: str) -> None:
    """Before any update the update-time log-probs must equal those stored at acting time (ratio 1)."""
    masks = None
    if case in ("clip", "tanh"):
        agent = PPO(OBS, BOX, squash=case, n_steps=5)
    elif case == "discrete_masked":
        agent = PPO(OBS, spaces.Discrete(4), n_steps=5)
        masks = np.array([[1, 0, 1, 1], [0, 1, 0, 0], [1, 1, 1, 1]], dtype=bool)
    else:
        space = spaces.Tuple((spaces.Discrete(3), spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)))
        agent = PPO(OBS, space, squash="tanh" if case == "hybrid_tanh" else "clip", n_steps=5)
    scramble(agent)
    buf = fill(agent, masks=masks)
    for batch in buf.minibatches(4, np.random.default_rng(0)):
        with torch.no_grad():
            out = agent.policy.actor(batch.obs)
            lp, _ = agent.head.evaluate(out, agent.policy.log_std, batch.raw, batch.masks)
        assert torch.allclose(lp, batch.old_log_probs, atol=1e-5)


# ---- observation normaliser and persistence ---------------------------------------------------------------
def test_obs_normaliser_learns_in_policy_step_only_and_is_restored_by_load_state_dict() -> None:
    agent = PPO(OBS, BOX, normalize_obs=True, n_steps=4, seed=1)
    rng = np.random.default_rng(0)
    for _ in range(50):
        agent.policy_step(rng.normal(5.0, 3.0, size=(8, 4)), None)
    mean, var = agent.obs_rms.mean.copy(), agent.obs_rms.var.copy()
    np.testing.assert_allclose(mean, 5.0, atol=0.5)
    np.testing.assert_allclose(var, 9.0, rtol=0.2)
    step = agent.policy_step(np.full((2, 4), 5.0), None)
    mean, var = agent.obs_rms.mean.copy(), agent.obs_rms.var.copy()
    assert np.abs(step.obs).max() < 0.2  # the stored observations are the normalised ones
    probe = rng.normal(50.0, 10.0, size=(16, 4))  # far from the statistics: would move them a lot
    agent.act_batch(probe, explore=False)
    agent.act_batch(probe, explore=True)
    agent.value(probe)
    np.testing.assert_array_equal(agent.obs_rms.mean, mean)
    np.testing.assert_array_equal(agent.obs_rms.var, var)

    other = PPO(OBS, BOX, normalize_obs=True, n_steps=4, seed=99)
    other.load_state_dict(roundtrip(agent.state_dict()))
    np.testing.assert_array_equal(other.obs_rms.mean, mean)
    np.testing.assert_array_equal(other.obs_rms.var, var)
    np.testing.assert_array_equal(np.stack(other.act_batch(probe, False)), np.stack(agent.act_batch(probe, False)))


@pytest.mark.parametrize("space", [BOX, spaces.Discrete(3)], ids=["box", "discrete"])
def test_state_dict_round_trip_gives_bit_identical_actions_and_updates(space: spaces.Space) -> None:
    kw = dict(n_steps=8, batch_size=8, n_epochs=2, normalize_obs=True, lr_schedule="linear", horizon=1000)
    a = PPO(OBS, space, seed=3, **kw)
    a.on_step(48)
    a.update(fill(a, seed=1))  # optimiser moments, normaliser statistics, step counters all non-trivial
    b = PPO(OBS, space, seed=4, **kw)
    b.load_state_dict(roundtrip(a.state_dict()))
    obs = np.random.default_rng(5).normal(size=(6, 4))
    sa, sb = a.policy_step(obs, None), b.policy_step(obs, None)
    for field in ("raw", "log_probs", "values", "obs"):
        np.testing.assert_array_equal(getattr(sa, field), getattr(sb, field), err_msg=field)
    assert np.array_equal(np.asarray(a.act_batch(obs, True)), np.asarray(b.act_batch(obs, True)))
    ra, rb = fill(a, seed=2), fill(b, seed=2)
    assert a.update(ra) == b.update(rb)
    for pa, pb in zip(a.policy.parameters(), b.policy.parameters(), strict=True):
        assert torch.equal(pa, pb)


# ---- the update -------------------------------------------------------------------------------------------
def test_update_reports_losses_and_follows_the_linear_schedules() -> None:
    agent = PPO(OBS, BOX, n_steps=16, batch_size=12, n_epochs=3, lr=1e-3, lr_schedule="linear",
                clip_range=0.2, clip_schedule="linear", horizon=1000, clip_range_vf=0.5)
    agent.on_step(250)
    before = [p.detach().clone() for p in agent.policy.parameters()]
    out = agent.update(fill(agent))
    for key in ("loss/policy", "loss/value", "loss/entropy", "loss/approx_kl", "loss/clip_fraction",
                "loss/explained_variance", "train/lr", "train/clip_range", "train/std"):
        assert isinstance(out[key], float) and math.isfinite(out[key]), key
    assert out["train/lr"] == pytest.approx(7.5e-4)
    assert out["train/clip_range"] == pytest.approx(0.15)
    assert agent.optimizer.param_groups[0]["lr"] == pytest.approx(7.5e-4)
    assert out["train/epochs"] == 3.0
    assert agent.optimizer.state[agent.policy.log_std]["step"].item() == 3 * 4  # 48 rows / 12 per batch
    assert any(not torch.equal(p0, p) for p0, p in zip(before, agent.policy.parameters(), strict=True))
    agent.on_step(5000)  # past the horizon: decayed to 0, not negative
    assert agent.current_lr() == 0.0 and agent.current_clip_range() == 0.0


def test_target_kl_stops_the_epochs_early() -> None:
    agent = PPO(OBS, spaces.Discrete(3), n_steps=16, batch_size=8, n_epochs=10, lr=0.05, target_kl=1e-4)
    out = agent.update(fill(agent))
    assert out["train/epochs"] < 10
    steps = agent.optimizer.state[agent.policy.actor[0].weight]["step"].item()
    assert 1 <= steps < 10 * 6


def test_a2c_makes_one_rmsprop_step_on_the_whole_rollout() -> None:
    agent = A2C(OBS, BOX, n_steps=5)
    assert isinstance(agent.optimizer, torch.optim.RMSprop) and agent.n_epochs == 1
    buf = fill(agent, num_envs=4)
    obs, raw = torch.from_numpy(buf.obs.reshape(20, 4)), torch.from_numpy(buf.raw.reshape(20, 2))
    adv = torch.from_numpy(buf.advantages.reshape(20))
    out_, _ = agent.policy(obs)
    lp, _ = agent.head.evaluate(out_, agent.policy.log_std, raw, None)
    expected_pg = -(adv * lp).mean().item()  # the plain policy gradient on all 20 rows, unnormalised
    out = agent.update(buf)
    assert out["loss/policy"] == pytest.approx(expected_pg, rel=1e-5)
    assert out["loss/clip_fraction"] == 0.0
    assert agent.optimizer.state[agent.policy.log_std]["step"].item() == 1


# ---- bad hyperparameters ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_steps": 0}, "n_steps"),
        ({"n_epochs": 0}, "n_epochs"),
        ({"gae_lambda": 0.0}, "gae_lambda"),
        ({"gae_lambda": 1.5}, "gae_lambda"),
        ({"clip_range": 0.0}, "clip_range"),
        ({"clip_range_vf": -1.0}, "clip_range_vf"),
        ({"lr": 0.0}, "agent.lr"),
        ({"squash": "sigmoid"}, "squash"),
        ({"lr_schedule": "cosine"}, "lr_schedule"),
        ({"clip_schedule": "linear"}, "horizon"),
        ({"activation": "swish"}, "activation"),
        ({"target_kl": 0.0}, "target_kl"),
        ({"ent_coef": -0.1}, "ent_coef"),
        ({"layout": "per_action"}, "Tuple"),
    ],
)
def test_bad_hyperparameters_fail_with_one_line(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        PPO(OBS, BOX, **kwargs)
    assert "\n" not in str(err.value)


def test_tanh_needs_a_bounded_box() -> None:
    with pytest.raises(ConfigError, match="bounded"):
        PPO(OBS, spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32), squash="tanh")


def test_defaults_are_sb3_mlp_policy() -> None:
    agent = PPO(OBS, BOX)
    linears = [m for m in agent.policy.actor if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [64, 64, 2]
    assert isinstance(agent.policy.actor[1], torch.nn.Tanh)
    assert all(torch.count_nonzero(m.bias) == 0 for m in linears)
    w = linears[-1].weight  # orthogonal with gain 0.01: rows orthonormal times 0.01
    assert torch.allclose(w @ w.T, 1e-4 * torch.eye(2), atol=1e-8)
    assert torch.equal(agent.policy.log_std.detach(), torch.zeros(2))
    assert agent.optimizer.defaults["eps"] == 1e-5


# ---- learning (slow): through the one training loop, with the shipped rl-zoo3 experiments ------------------
@pytest.mark.slow
@pytest.mark.parametrize(("experiment", "vector", "threshold"), [("cartpole_ppo", "async", 475.0),
                                                                  ("pendulum_ppo", "sync", -300.0)])
def test_ppo_learns_with_rl_zoo3_hyperparameters(tmp_path, experiment: str, vector: str, threshold: float) -> None:
    from conftest import compose
    from rlrun.trainer import Trainer

    cfg = compose([f"+experiment={experiment}", f"vector={vector}", "eval_every=0", "eval_episodes=10",
                   "progress=false", "plots=false", "seed=0"])
    final = Trainer(cfg, tmp_path).run()["final"]
    assert final["return_mean"] >= threshold, final


SHORT_EPISODES = {
    "reach": ["env=reach", "env.max_steps=20"],
    "blockchain": ["env=blockchain", "env.episode_steps=10"],
    "blockchain_hybrid": ["env=blockchain", "env.action_mode=hybrid", "env.episode_steps=10"],
    "consensus": ["env=consensus", "env.max_steps=10"],
    "inverter": ["env=inverter", "env.episode_s=20"],
    "relay": ["env=relay", "env.max_steps=20"],
    "hybrid_targets": ["env=hybrid_targets"],
}


@pytest.mark.parametrize("env", list(SHORT_EPISODES))
def test_ppo_trains_on_every_rlrun_env(tmp_path, env: str) -> None:
    """Two rollouts of 2 copies x 8 steps and an evaluation on each simulator, every action space included."""
    from conftest import compose
    from rlrun.trainer import Trainer

    cfg = compose([*SHORT_EPISODES[env], "agent=ppo", "agent.n_steps=8", "agent.batch_size=8", "agent.n_epochs=1",
                   "num_envs=2", "total_steps=32", "eval_every=0", "eval_episodes=1", "baseline=null",
                   "progress=false", "plots=false", "checkpoint_every=0"])
    summary = Trainer(cfg, tmp_path).run()
    assert summary["status"] == "finished" and summary["step"] == 32
    assert np.isfinite(summary["final"]["return_mean"])


def test_ppo_resume_mid_rollout_matches_uninterrupted_run(tmp_path) -> None:
    """SIGTERM in the middle of a rollout: the half-full rollout, the obs normaliser and the env copies are
    checkpointed, and the resumed run ends bit-identical to an uninterrupted one."""
    import signal

    from conftest import compose
    from rlrun.trainer import Trainer

    n = 74  # 2 copies x 16 steps per rollout: the third rollout is half full
    base = ["env=reach", "env.dim=3", "env.max_steps=25", "progress=false", "plots=false", "agent=ppo",
            "agent.n_steps=16", "agent.batch_size=16", "agent.n_epochs=2",
            "agent.normalize_obs=true", "agent.hidden=[16]", "num_envs=2", "eval_every=40", "eval_episodes=2",
            "checkpoint_every=0", f"total_steps={2 * n}"]
    straight = Trainer(compose(base), tmp_path / "a")
    straight.run()
    first = Trainer(compose(base), tmp_path / "b")
    on_step = first.agent.on_step

    def interrupt_at_n(step: int) -> None:
        on_step(step)
        if step == n:
            signal.raise_signal(signal.SIGTERM)

    first.agent.on_step = interrupt_at_n
    assert first.run()["status"] == "interrupted"
    assert 0 < first.rollout.pos < first.rollout.n_steps
    resumed = Trainer(compose(base), tmp_path / "b", resume=True)
    resumed.run()
    a, b = straight.agent.state_dict()["modules"], resumed.agent.state_dict()["modules"]
    for name in a:
        for k, v in a[name].items():
            if torch.is_tensor(v):
                assert torch.equal(v, b[name][k]), (name, k)
    assert straight.progress == resumed.progress
    assert (tmp_path / "a" / "metrics.csv").read_text() == (tmp_path / "b" / "metrics.csv").read_text()
