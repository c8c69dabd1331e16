"""agent=cql: the CQL(H) regulariser pinned on hand-computable cases, its effect on Q, behaviour cloning,
fine-tuning from a checkpoint and the offline flag."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlrun.agents.cql import CQL, cql_logsumexp
from rlrun.checkpoint import save_checkpoint
from rlrun.errors import CheckpointError, ConfigError
from rlrun.replay.buffer import Batch

OBS = spaces.Box(-10.0, 10.0, shape=(4,), dtype=np.float32)
ACT = spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
SMALL = dict(actor_hidden=[32, 32], critic_hidden=[32, 32], batch_size=32)


def test_logsumexp_estimator_by_hand():
    # one critic, one state, N = 1 sample per source, A = 1 (uniform density 1/2):
    # terms Q - log mu: 0 + log 2, 1 - 1, 2 - 2  ->  log((2 + 1 + 1) / 3) = log(4/3)
    t = torch.tensor
    value = cql_logsumexp(t([[[0.0]]]), t([[[1.0]]]), t([[[2.0]]]), t([[1.0]]), t([[2.0]]), act_dim=1)
    assert value.shape == (1, 1)
    assert float(value) == pytest.approx(math.log(4 / 3), abs=1e-6)
    # with temperature 2: 2 * (log((exp(0) * 2 + exp(0.5 - 1) + exp(1 - 2)) / 3))
    v2 = cql_logsumexp(t([[[0.0]]]), t([[[1.0]]]), t([[[2.0]]]), t([[1.0]]), t([[2.0]]), act_dim=1, temp=2.0)
    assert float(v2) == pytest.approx(2 * math.log((2 + math.exp(-0.5) + math.exp(-1.0)) / 3), abs=1e-6)


def constant_critic(agent: CQL, value: float) -> None:
    """Make every critic output `value` for any input: Q(s, a) = value."""
    last = agent.critic.body[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(value)


def test_regularizer_value_in_the_agent_by_hand(monkeypatch):
    agent = CQL(OBS, ACT, cql_n_actions=5, cql_alpha=1.0, **SMALL)
    constant_critic(agent, 3.0)
    # the policy proposes a = 0 with log-density -1 everywhere
    monkeypatch.setattr(agent.actor, "sample", lambda obs: (torch.zeros(obs.shape[0], 3),
                                                           torch.full((obs.shape[0],), -1.0)))
    obs = torch.randn(8, 4)
    q_data = torch.full((2, 8), 3.0)
    gap, _ = agent.cql_regularizer(obs, obs, q_data)
    # per state: log((5 * exp(3 + 3 log 2) + 10 * exp(3 + 1)) / 15) - 3 = log((5 * 8 + 10 * e) / 15)
    expected = math.log((5 * 8 + 10 * math.e) / 15)
    assert gap.shape == (2,)  # both critics
    torch.testing.assert_close(gap, torch.full((2,), expected), atol=1e-5, rtol=0)
    # the critic loss adds cql_alpha * sum over critics of the gap to the Bellman loss
    batch = Batch(obs=obs, actions=torch.zeros(8, 3), rewards=torch.zeros(8), next_obs=obs,
                  dones=torch.zeros(8), discounts=torch.full((8,), 0.99))
    loss, info, _ = agent.critic_loss(batch, torch.full((8,), 3.0))  # Bellman error 0
    assert float(loss.detach()) == pytest.approx(2 * expected, abs=1e-5)
    assert info["loss/cql"] == pytest.approx(2 * expected, abs=1e-5)


def dataset_batch(n: int = 32, action: float = 0.5) -> Batch:
    obs = torch.randn(n, 4)
    return Batch(obs=obs, actions=torch.full((n, 3), action), rewards=torch.zeros(n), next_obs=obs,
                 dones=torch.zeros(n), discounts=torch.full((n,), 0.9))


def test_conservative_penalty_pushes_down_unseen_actions():
    torch.manual_seed(0)
    agent = CQL(OBS, ACT, cql_alpha=5.0, seed=0, gamma=0.9, **SMALL)
    plain = CQL(OBS, ACT, cql_alpha=0.0, seed=0, gamma=0.9, **SMALL)
    for _ in range(150):
        b = dataset_batch()
        agent.update(b)
        plain.update(b)
    obs = torch.randn(64, 4)

    def gap(a: CQL) -> float:
        with torch.no_grad():
            q_seen = a.critic(obs, torch.full((64, 3), 0.5)).mean()
            q_unseen = a.critic(obs, torch.full((64, 3), -0.8)).mean()
        return float(q_seen - q_unseen)

    assert gap(agent) > 0.5
    assert gap(agent) > gap(plain) + 0.5


def test_behaviour_cloning_warm_start_imitates_the_dataset():
    torch.manual_seed(1)
    agent = CQL(OBS, ACT, cql_alpha=0.0, bc_steps=10_000, seed=1, lr=2e-3, **SMALL)
    for _ in range(300):
        out = agent.update(dataset_batch(action=0.5))
    assert out["train/bc"] == 1.0
    act = agent.act(np.zeros(4, dtype=np.float32), explore=False)
    np.testing.assert_allclose(act, 0.5, atol=0.1)


def test_lagrange_multiplier_moves_toward_the_target_gap():
    agent = CQL(OBS, ACT, lagrange=True, target_action_gap=100.0, alpha_prime_lr=0.05, **SMALL)
    out = [agent.update(dataset_batch()) for _ in range(20)]
    alpha_prime = [o["train/alpha_prime"] for o in out]  # the value used in each update, from exp(0) = 1
    assert alpha_prime[0] == 1.0
    assert alpha_prime[-1] < alpha_prime[1] < 1.0  # gap < target: alpha' shrinks


def test_fine_tuning_starts_from_a_checkpoint(tmp_path):
    torch.manual_seed(2)
    offline = CQL(OBS, ACT, **SMALL)
    for _ in range(5):
        offline.update(dataset_batch())
    path = tmp_path / "best.pt"
    save_checkpoint(path, {"agent": offline.state_dict()})
    online = CQL(OBS, ACT, offline=False, cql_alpha=0.0, init_checkpoint=str(path), **SMALL)
    assert offline.offline and not online.offline
    obs = torch.randn(5, 4)
    torch.testing.assert_close(online.actor.deterministic(obs), offline.actor.deterministic(obs))
    torch.testing.assert_close(online.critic(obs, torch.zeros(5, 3)), offline.critic(obs, torch.zeros(5, 3)))
    with pytest.raises(CheckpointError):
        CQL(OBS, ACT, init_checkpoint=str(tmp_path / "missing.pt"), **SMALL)


def test_state_dict_round_trip_and_bad_config():
    agent = CQL(OBS, ACT, lagrange=True, **SMALL)
    agent.update(dataset_batch())
    clone = CQL(OBS, ACT, lagrange=True, **SMALL)
    clone.load_state_dict(agent.state_dict())
    assert float(clone.log_alpha_prime.detach()) == pytest.approx(float(agent.log_alpha_prime.detach()))
    with pytest.raises(ConfigError, match="cql_alpha"):
        CQL(OBS, ACT, cql_alpha=-1.0)
    with pytest.raises(ConfigError, match="cql_n_actions"):
        CQL(OBS, ACT, cql_n_actions=0)
