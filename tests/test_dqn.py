"""agent=dqn: double-DQN target with action masks by hand, learning a chain task, masking on env=relay."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gymnasium import spaces

from rlrun.agents.dqn import DQN
from rlrun.envs.relay import RelayEnv
from rlrun.errors import ConfigError
from rlrun.replay.buffer import Batch, ReplayBuffer


class Chain(gym.Env):
    """States 0..n-1 (one-hot), actions left/right; reaching n-1 pays 1 and ends, every step costs 0.01.
    Optimal return 1 - 0.01 (n - 2) from state 0; a policy that dithers is truncated at 4n steps."""

    def __init__(self, n: int = 6) -> None:
        self.n = n
        self.observation_space = spaces.Box(0.0, 1.0, (n,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)

    def _obs(self) -> np.ndarray:
        o = np.zeros(self.n, dtype=np.float32)
        o[self.s] = 1.0
        return o

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.s, self.t = 0, 0
        return self._obs(), {}

    def step(self, action):
        self.s = max(0, min(self.n - 1, self.s + (1 if action == 1 else -1)))
        self.t += 1
        done = self.s == self.n - 1
        return self._obs(), (1.0 if done else 0.0) - 0.01, done, self.t >= 4 * self.n and not done, {}


def test_dqn_learns_the_chain():
    env = Chain(6)
    agent = DQN(
        env.observation_space,
        env.action_space,
        hidden=[32],
        lr=3e-3,
        batch_size=32,
        eps_decay_steps=1500,
        target_update_every=100,
        gamma=0.95,
        seed=0,
    )
    buf = ReplayBuffer(env.observation_space, env.action_space, capacity=5000, gamma=0.95, seed=0)
    obs, _ = env.reset(seed=0)
    for step in range(1, 3001):
        a = agent.act(obs, True)
        nxt, r, term, trunc, _ = env.step(a)
        buf.add(obs, a, r, nxt, term, trunc)
        agent.on_step(step)
        obs = env.reset()[0] if term or trunc else nxt
        if step > 200:
            agent.update(buf.sample(32))
    obs, _ = env.reset(seed=1)
    ret, done = 0.0, False
    while not done:
        obs, r, term, trunc, _ = env.step(agent.act(obs, False))
        ret += r
        done = term or trunc
    assert ret == pytest.approx(1.0 - 0.01 * 5)


def test_double_dqn_target_with_masks_by_hand():
    obs_space = spaces.Box(0.0, 1.0, (5,), dtype=np.float32)  # 3 features + a 2-action mask at the tail
    agent = DQN(obs_space, spaces.Discrete(2), hidden=[8], action_mask="obs_tail", loss="mse", seed=0)
    torch.manual_seed(1)
    for p in agent.q_target.parameters():  # online and target nets differ, as after some updates
        p.data.normal_()
    obs = torch.rand(3, 5)
    nxt = torch.rand(3, 5)
    nxt[:, 3:] = torch.tensor([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])  # both valid | only action 1 | none
    batch = Batch(
        obs=obs,
        actions=torch.tensor([[0.0], [1.0], [1.0]]),
        rewards=torch.tensor([1.0, -1.0, 0.5]),
        next_obs=nxt,
        dones=torch.tensor([0.0, 0.0, 0.0]),
        discounts=torch.tensor([0.9, 0.81, 0.9]),
    )
    with torch.no_grad():
        q_online_next, q_target_next = agent.q(nxt), agent.q_target(nxt)
        a0 = int(q_online_next[0].argmax())
        y = torch.tensor(
            [
                1.0 + 0.9 * float(q_target_next[0, a0]),
                -1.0 + 0.81 * float(q_target_next[1, 1]),  # the masked action 0 is never the argmax
                0.5,
            ]
        )  # no valid action: bootstrap from 0
        q_sa = agent.q(obs).gather(1, torch.tensor([[0], [1], [1]])).squeeze(1)
        expected = F.mse_loss(q_sa, y).item()
    out = agent.update(batch)
    assert out["loss/q"] == pytest.approx(expected, rel=1e-5)
    assert out["td_error"] == pytest.approx((y - q_sa).abs().numpy(), rel=1e-5)


def test_importance_weights_scale_the_loss():
    obs_space = spaces.Box(0.0, 1.0, (4,), dtype=np.float32)
    agent = DQN(obs_space, spaces.Discrete(3), hidden=[8], action_mask="none", seed=0)
    before = [p.clone() for p in agent.q.parameters()]
    batch = Batch(
        obs=torch.rand(4, 4),
        actions=torch.tensor([[0.0], [1.0], [2.0], [0.0]]),
        rewards=torch.ones(4),
        next_obs=torch.rand(4, 4),
        dones=torch.zeros(4),
        discounts=torch.full((4,), 0.99),
        weights=torch.zeros(4),
        indices=np.arange(4),
    )
    out = agent.update(batch)
    assert out["loss/q"] == 0.0 and out["td_error"].shape == (4,) and (out["td_error"] > 0).all()
    assert all(torch.equal(a, b) for a, b in zip(before, agent.q.parameters(), strict=True))


def test_relay_mask_is_detected_and_respected():
    env = RelayEnv(load=100.0, episode_ms=1500.0)
    agent = DQN(env.observation_space, env.action_space, hidden=[16], seed=0)
    assert agent.masked
    plain = DQN(spaces.Box(-1, 1, (12,)), spaces.Discrete(4), hidden=[16])
    assert not plain.masked
    obs, info = env.reset(seed=0)
    for explore, eps in ((True, 1.0), (False, 0.0)):
        agent.epsilon = eps
        for _ in range(500):
            a = agent.act(obs, explore)
            assert info["action_mask"][a] == 1
            obs, _, _, truncated, info = env.step(a)
            assert info["refused"] == 0.0
            if truncated:
                obs, info = env.reset()


def test_state_dict_round_trip_and_errors():
    obs_space = spaces.Box(0.0, 1.0, (4,), dtype=np.float32)
    agent = DQN(obs_space, spaces.Discrete(3), hidden=[8], seed=0)
    agent.on_step(5000)
    batch = Batch(
        obs=torch.rand(8, 4),
        actions=torch.randint(0, 3, (8, 1)).float(),
        rewards=torch.rand(8),
        next_obs=torch.rand(8, 4),
        dones=torch.zeros(8),
        discounts=torch.full((8,), 0.99),
    )
    agent.update(batch)
    clone = DQN(obs_space, spaces.Discrete(3), hidden=[8], seed=1)
    clone.load_state_dict(agent.state_dict())
    x = torch.rand(5, 4)
    assert torch.equal(clone.q(x), agent.q(x)) and clone.epsilon == agent.epsilon == pytest.approx(0.525)
    with pytest.raises(ConfigError, match="action_mask"):
        DQN(obs_space, spaces.Discrete(3), action_mask="yes")


def test_trainer_runs_dqn_on_relay_with_prioritized_replay(tmp_path):
    import rlrun.config  # noqa: F401  (registers the run schema)
    from conftest import compose
    from rlrun.trainer import Trainer

    cfg = compose(
        [
            "env=relay",
            "agent=dqn",
            "replay=prioritized",
            "env.episode_ms=1000",
            "env.load=100",
            "agent.hidden=[32]",
            "agent.batch_size=32",
            "total_steps=600",
            "learning_starts=200",
            "eval_every=0",
            "eval_episodes=1",
            "checkpoint_every=0",
            "progress=false",
            "plots=false",
        ]
    )
    summary = Trainer(cfg, tmp_path).run()
    assert summary["step"] == 600 and (tmp_path / "checkpoints" / "last.pt").is_file()
    assert summary["final"]["metrics"]["refused"] == 0.0  # masked acting never refuses a message


def test_discrete_start_offsets_actions_and_updates():
    """Discrete(3, start=-1): acting returns start + index, and update() indexes Q with action - start."""
    obs_space = spaces.Box(0.0, 1.0, (2,), dtype=np.float32)
    space = spaces.Discrete(3, start=-1)
    agent = DQN(obs_space, space, hidden=[8], loss="mse", eps_start=0.0, eps_end=0.0, seed=0)
    obs = np.array([[0.2, 0.7], [0.9, 0.1]], dtype=np.float32)
    with torch.no_grad():
        greedy = agent.q(torch.as_tensor(obs)).argmax(dim=1).tolist()
    assert agent.act_batch(obs, explore=False) == [g - 1 for g in greedy]
    assert all(space.contains(a) for a in agent.act_batch(obs, explore=True))
    batch = Batch(obs=torch.as_tensor(obs), actions=torch.tensor([[-1.0], [1.0]]), rewards=torch.tensor([1.0, 0.0]),
                  next_obs=torch.as_tensor(obs), dones=torch.ones(2), discounts=torch.full((2,), 0.9))
    with torch.no_grad():
        q_sa = agent.q(torch.as_tensor(obs)).gather(1, torch.tensor([[0], [2]])).squeeze(1)
    out = agent.update(batch)  # dones=1: y = r
    assert out["loss/q"] == pytest.approx(F.mse_loss(q_sa, torch.tensor([1.0, 0.0])).item(), rel=1e-5)
