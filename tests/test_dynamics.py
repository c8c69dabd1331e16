"""Seed 002's forward dynamics model: shapes, residual head, the weighted loss, windowing without leaks,
learning a delayed system better than persistence, and agent=dynamics inside the trainer contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlrun.agents.dynamics import DynamicsAgent
from rlrun.errors import ConfigError
from rlrun.models.dynamics import (
    DynamicsTrainer,
    ForwardDynamicsModel,
    ForwardModelLoss,
    kstep_error,
    split_sequences,
)


def test_shapes_and_residual_connection():
    torch.manual_seed(0)
    m = ForwardDynamicsModel(state_dim=30, action_dim=3, hidden_dim=32, lstm_hidden=16, lookahead_steps=6)
    s, a = torch.randn(4, 30), torch.randn(4, 3)
    assert m(s, a).shape == (4, 30)
    assert m(torch.randn(4, 7, 30), torch.randn(4, 7, 3)).shape == (4, 7, 30)
    assert m.predict_trajectory(s, torch.randn(4, 5, 3)).shape == (4, 5, 30)
    with torch.no_grad():
        m.predictor[-1].weight.zero_()
        m.predictor[-1].bias.zero_()
    torch.testing.assert_close(m(s, a), s)  # s_{t+k} = s_t + delta


def test_weighted_loss_matches_the_seed():
    pred, true = torch.zeros(2, 6), torch.ones(2, 6)
    # per row: 5 (feature 0) + 3 * 3 (features 1..3) + 1 + 1 = 16 over 6 features
    assert float(ForwardModelLoss(6)(pred, true)) == pytest.approx(16 / 6)
    assert float(ForwardModelLoss(6, weighted=False)(pred, true)) == pytest.approx(1.0)


def test_huber_loss_is_squared_inside_delta_and_linear_outside():
    w = np.array([5.0, 3.0, 3.0, 3.0, 1.0, 1.0])
    pred = torch.zeros(1, 6)
    small, big = torch.full((1, 6), 0.005), torch.full((1, 6), 0.5)
    huber = ForwardModelLoss(6, huber_delta=0.01)
    assert float(huber(pred, small)) == pytest.approx(float(ForwardModelLoss(6)(pred, small)), rel=1e-5)
    # outside delta: 2 * delta * (|e| - delta / 2) per element, weighted
    assert float(huber(pred, big)) == pytest.approx((w * 2 * 0.01 * (0.5 - 0.005)).mean(), rel=1e-5)
    with pytest.raises(ConfigError, match="huber_delta"):
        DynamicsAgent(spaces.Box(-1, 1, shape=(4,)), spaces.Box(-1, 1, shape=(1,)), dataset="x.npz",
                      huber_delta=0.0)


def synthetic_dataset(episodes: int = 6, length: int = 300, delay: int = 3, seed: int = 0) -> dict:
    """x_{t+1} = 0.9 x_t + 0.5 a_{t-delay}: the action shows `delay` steps late, as the inverter's does.
    The observation is [x, pending actions (oldest first)], so the state is Markov."""
    rng = np.random.default_rng(seed)
    obs, acts, nxt, ep = [], [], [], []
    for e in range(episodes):
        x, queue = 0.0, [0.0] * delay
        for _ in range(length):
            o = np.array([x, *queue], dtype=np.float32)
            a = float(np.clip(-x + rng.normal(0, 0.5), -1, 1))
            queue.append(a)
            x = 0.9 * x + 0.5 * queue.pop(0)
            obs.append(o)
            acts.append([a])
            nxt.append(np.array([x, *queue], dtype=np.float32))
            ep.append(e)
    n = len(obs)
    trunc = np.zeros(n, bool)
    trunc[length - 1::length] = True
    return {"obs": np.array(obs), "actions": np.array(acts, np.float32), "next_obs": np.array(nxt),
            "rewards": np.zeros(n, np.float32), "terminated": np.zeros(n, bool), "truncated": trunc,
            "episode": np.array(ep, np.int32)}


def test_windows_stay_inside_episodes_and_targets_are_k_ahead():
    data = synthetic_dataset(episodes=4, length=50)
    data["obs"][:, 0] = np.arange(200)  # the observation is its own time index
    data["next_obs"][:, 0] = np.arange(200) + 1
    train, val = split_sequences(data, k=4, seq_len=3, val_fraction=0.25)
    s, _, y = train.batch(np.arange(len(train)), torch.device("cpu"))
    np.testing.assert_array_equal((y[..., 0] - s[..., 0]).numpy(), 4.0)  # every target is k later
    np.testing.assert_array_equal((s[:, 1:, 0] - s[:, :-1, 0]).numpy(), 4.0)  # stride k
    episode_of = s[..., 0].numpy() // 50
    # inputs of episode e are 50e..50e+49, its targets 50e+1..50e+50 (the final state): no window crosses
    np.testing.assert_array_equal(episode_of.min(1), (y[..., 0].numpy().max(1) - 1) // 50)
    assert len(train) == 3 * (51 - 12) and len(val) == 51 - 12
    held_out = val.batch(np.arange(len(val)), torch.device("cpu"))[0]
    assert held_out[..., 0].min() >= 150  # the last episode is held out


def test_model_learns_the_delayed_system_better_than_persistence():
    torch.manual_seed(0)
    data = synthetic_dataset(episodes=8, length=300, delay=3)
    train, val = split_sequences(data, k=4, seq_len=4, val_fraction=0.25)
    model = ForwardDynamicsModel(state_dim=4, action_dim=1, hidden_dim=64, lstm_hidden=32, lookahead_steps=4,
                                 dropout=0.0)
    trainer = DynamicsTrainer(model, lr=3e-3)
    rng = np.random.default_rng(0)
    before = trainer.validate(val)["loss/val"]
    for _ in range(400):
        trainer.train_step(*train.batch(rng.integers(0, len(train), 64), torch.device("cpu")))
    after = trainer.validate(val)
    assert after["loss/val"] < 0.3 * after["loss/val_persistence"]
    assert after["loss/val"] < before and after["loss/best_val"] <= after["loss/val"]
    err = kstep_error(trainer.best_model, val, obs_scale_w=1.0)
    assert err["model_export_rmse_w"][0] < 0.5 * err["persistence_export_rmse_w"][0]
    assert len(err["horizon_s"]) == 4 and err["horizon_s"][-1] == 16


def test_dynamics_agent_trains_from_its_dataset_and_round_trips(tmp_path):
    data = synthetic_dataset(episodes=5, length=120, delay=3)
    path = tmp_path / "d.npz"
    np.savez(path, **data)
    obs_space = spaces.Box(-10, 10, shape=(4,), dtype=np.float32)
    act_space = spaces.Box(-1, 1, shape=(1,), dtype=np.float32)
    kw = dict(dataset=str(path), lookahead_steps=4, seq_len=3, hidden_dim=32, lstm_hidden=16, val_every=5,
              batch_size=16, mpc_candidates=8)
    agent = DynamicsAgent(obs_space, act_space, **kw)
    assert agent.offline
    outs = [agent.update(None) for _ in range(10)]
    assert "loss/val" in outs[4] and "loss/val" not in outs[3]
    assert outs[9]["loss/best_val"] <= outs[4]["loss/best_val"]
    assert outs[9]["loss/persistence_export_rmse_w"] > 0
    a = agent.act(data["obs"][10], explore=False)
    assert a.shape == (1,) and -1 <= a[0] <= 1
    clone = DynamicsAgent(obs_space, act_space, **kw)
    clone.load_state_dict(agent.state_dict())
    s = torch.from_numpy(data["obs"][:5])
    act = torch.from_numpy(data["actions"][:5])
    torch.testing.assert_close(clone.trainer.best_model.eval()(s, act),
                               agent.trainer.best_model.eval()(s, act))
    assert clone.trainer.best_val == agent.trainer.best_val
    with pytest.raises(ConfigError, match="dataset"):
        DynamicsAgent(obs_space, act_space, dataset=None)
    with pytest.raises(ConfigError, match="dims"):
        DynamicsAgent(spaces.Box(-1, 1, shape=(7,), dtype=np.float32), act_space, **kw)


def test_predicted_cost_scores_the_models_prediction():
    from rlrun.models.dynamics import predicted_cost

    m = ForwardDynamicsModel(state_dim=30, action_dim=3, hidden_dim=16, lstm_hidden=8)
    with torch.no_grad():
        m.predictor[-1].weight.zero_()
        m.predictor[-1].bias.zero_()  # predicts "no change": the cost of the current state
    s = np.zeros((2, 30), dtype=np.float32)
    s[:, 1:4] = np.array([[0.1, -0.02, 0.0], [-0.04, 0.0, 0.02]])  # net per phase / 5000
    s[:, 8:11] = np.array([[0.0, 0.1, 0.0], [0.01, 0.0, 0.0]])  # slaves / 5000
    out = predicted_cost(m, s, np.zeros((2, 3), dtype=np.float32), obs_scale_w=5000.0)
    # state 0: export 500 W, import 100 W on phase b, all caused by its 500 W slave -> 100 W
    # state 1: export 100 W, import 200 W on phase a, of which its 50 W slave caused 50 W
    assert out["pred_export_w"] == pytest.approx((500 + 100) / 2, rel=1e-5)
    assert out["pred_over_diversion_w"] == pytest.approx((100 + 50) / 2, rel=1e-5)


def test_expected_phase_cost_closed_form_and_quantile_optimum():
    from rlrun.agents.dynamics import expected_phase_cost

    sigma = torch.tensor(2.0)
    # at mu = 0: E[max(X,0)] = E[max(-X,0)] = sigma / sqrt(2 pi)
    c0 = expected_phase_cost(torch.tensor(0.0), sigma, 1.5, 1.0)
    assert float(c0) == pytest.approx(2.5 * 2.0 / np.sqrt(2 * np.pi), rel=1e-6)
    # far from zero it is the linear cost
    assert float(expected_phase_cost(torch.tensor(50.0), sigma, 1.5, 1.0)) == pytest.approx(75.0, rel=1e-6)
    assert float(expected_phase_cost(torch.tensor(-50.0), sigma, 1.5, 1.0)) == pytest.approx(50.0, rel=1e-6)
    # the minimiser sits at the quantile Phi(mu / sigma) = w_i / (w_e + w_i) = 0.4 -> mu = -0.2533 sigma
    mus = torch.linspace(-3, 3, 60001)
    best = mus[torch.argmin(expected_phase_cost(mus, sigma, 1.5, 1.0))]
    assert float(best) == pytest.approx(-0.25335 * 2.0, abs=2e-3)


def test_policy_controller_trains_through_the_model(tmp_path):
    from rlrun.commands.collect import collect_command

    collect_command(["env=inverter", "agent=heuristic", "reward=export", "env.episode_s=150", "episodes=3",
                     f"out={tmp_path}"])
    env_obs = spaces.Box(-10, 10, shape=(30,), dtype=np.float32)
    env_act = spaces.Box(-1, 1, shape=(3,), dtype=np.float32)
    kw = dict(dataset=str(tmp_path / "dataset.npz"), seq_len=4, hidden_dim=32, lstm_hidden=16, val_every=5,
              batch_size=16, policy_hidden=[16], policy_batch_size=32, policy_start=5)
    agent = DynamicsAgent(env_obs, env_act, **kw)
    obs = np.load(tmp_path / "dataset.npz")["obs"][:1][0]
    before = agent.act(obs, explore=False)
    outs = [agent.update(None) for _ in range(12)]
    assert "loss/policy_cost" not in outs[3] and outs[11]["loss/policy_cost"] > 0
    assert outs[9]["loss/net_sigma_w"] > 0  # measured at each validation pass (every 5 updates)
    after = agent.act(obs, explore=False)
    assert after.shape == (3,) and np.all(np.abs(after) <= 1) and not np.allclose(before, after)
    clone = DynamicsAgent(env_obs, env_act, **kw)
    clone.load_state_dict(agent.state_dict())
    np.testing.assert_array_equal(clone.act(obs, explore=False), after)
    torch.testing.assert_close(clone.net_sigma, agent.net_sigma)


@pytest.mark.slow
def test_model_based_policy_beats_the_pi_baseline_on_held_out_days(tmp_path):
    """The quality bar of the inverter pipeline: from a PI dataset alone, the learned policy exports less than
    the PI baseline without importing more, on held-out days (24 half-hour windows of the test weeks). About
    5 min on 1 CPU.

    Measured per window, export / import kWh (PI: 0.0366 / 0.1080 on test, 0.0321 / 0.1034 on validation):
        agent seed 0: test 0.0344 / 0.0832, val 0.0293 / 0.0855
        agent seed 1: test 0.0351 / 0.0738, val 0.0319 / 0.0721
        agent seed 2: test 0.0295 / 0.0961, val 0.0258 / 0.0949
    Before (40 PI episodes with integrated exploration noise, MSE model loss): seed 0 exported 0.0398 and
    imported 0.1057 on test, and lost to the PI on the training days too (return -456 vs -417), so the split
    was not the cause: the model was biased by 40-100 W per phase near net power 0, where the policy operates
    (rlrun/agents/heuristic.py on the dither, rlrun/agents/dynamics.py on the Huber loss). With the dither
    alone (40 episodes) seed 0 exported 0.0405 / imported 0.0925; with 120 dithered episodes and MSE it tied
    the PI's export (0.0366 / 0.0915)."""
    from rlrun.agents.heuristic import ExportPI
    from rlrun.commands.collect import collect_command
    from rlrun.envs.inverter import InverterEnv
    from rlrun.envs.inverter.compare import evaluate

    torch.set_num_threads(1)
    collect_command(["env=inverter", "agent=heuristic", "reward=export", "episodes=120", f"out={tmp_path}"])
    env = InverterEnv(split="test")
    agent = DynamicsAgent(env.observation_space, env.action_space, dataset=str(tmp_path / "dataset.npz"),
                          export_weight=1.25, import_weight=1.0, policy_start=3000, seed=0)
    for _ in range(8000):
        agent.update(None)
    learned = evaluate(env, agent, episodes=24, seed=1000)
    pi = evaluate(env, ExportPI(env.observation_space, env.action_space, capacity_w=[5000.0, 2500.0, 2500.0]),
                  episodes=24, seed=1000)
    assert learned["export_kwh"] < pi["export_kwh"]
    assert learned["import_kwh"] <= pi["import_kwh"]
