"""DDPG and TD3 by hand: targets (with TD3's smoothing and clipping), the policy delay, exploration noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlrun.agents.ddpg import DDPG
from rlrun.agents.noise import ActionNoise
from rlrun.agents.td3 import TD3
from rlrun.replay.buffer import Batch, ReplayBuffer

OBS = spaces.Box(-1.0, 1.0, (3,), dtype=np.float32)
ACT = spaces.Box(-2.0, 2.0, (2,), dtype=np.float32)


def batch(b: int = 8) -> Batch:
    g = torch.Generator().manual_seed(0)
    return Batch(obs=torch.rand(b, 3, generator=g), actions=torch.rand(b, 2, generator=g) * 4 - 2,
                 rewards=torch.rand(b, generator=g), next_obs=torch.rand(b, 3, generator=g),
                 dones=torch.tensor([0.0, 1.0] * (b // 2)), discounts=torch.full((b,), 0.81))


def test_ddpg_target_by_hand():
    agent = DDPG(OBS, ACT, actor_hidden=[8], critic_hidden=[8], seed=0)
    b = batch()
    with torch.no_grad():
        q_next = agent.critic_target(b.next_obs, agent.actor_target(b.next_obs))[0]
    expected = b.rewards + 0.81 * (1 - b.dones) * q_next
    torch.testing.assert_close(agent._target_q(b), expected)


def test_td3_target_smooths_clips_and_takes_the_smaller_critic():
    agent = TD3(OBS, ACT, actor_hidden=[8], critic_hidden=[8], target_noise=10.0, target_noise_clip=0.5, seed=0)
    b = batch()
    torch.manual_seed(123)
    with torch.no_grad():
        a = agent.actor_target(b.next_obs)
        eps = (torch.randn_like(a) * 10.0).clamp(-0.5, 0.5)
        assert eps.abs().max() == 0.5  # the clip binds with noise this large
        next_a = (a + eps).clamp(-1.0, 1.0)
        q = agent.critic_target(b.next_obs, next_a)
        expected = b.rewards + 0.81 * (1 - b.dones) * torch.minimum(q[0], q[1])
    torch.manual_seed(123)
    torch.testing.assert_close(agent._target_q(b), expected)


def test_td3_updates_the_actor_and_targets_every_policy_delay_updates():
    agent = TD3(OBS, ACT, actor_hidden=[8], critic_hidden=[8], policy_delay=3, seed=0)
    actor = [p.detach().clone() for p in agent.actor.parameters()]
    target = [p.detach().clone() for p in agent.critic_target.parameters()]
    had_actor_step = []
    for _ in range(6):
        out = agent.update(batch())
        had_actor_step.append("loss/actor" in out)
        if len(had_actor_step) == 2:  # critic steps only so far: actor and target networks untouched
            assert all(torch.equal(a, p) for a, p in zip(actor, agent.actor.parameters(), strict=True))
            assert all(torch.equal(a, p) for a, p in zip(target, agent.critic_target.parameters(), strict=True))
    assert had_actor_step == [False, False, True, False, False, True]


def test_ddpg_drives_a_non_flat_box():
    space = spaces.Box(-1.0, 3.0, (2, 2), dtype=np.float32)
    agent = DDPG(OBS, space, actor_hidden=[8], critic_hidden=[8], seed=0)
    actions = agent.act_batch(np.zeros((2, 3), np.float32), explore=True)
    assert all(a.shape == (2, 2) and space.contains(a) for a in actions)
    buf = ReplayBuffer(OBS, space, capacity=10)
    for a in actions:
        buf.add(np.zeros(3, np.float32), a, 1.0, np.zeros(3, np.float32), False, False)
    assert np.isfinite(agent.update(buf.sample(4))["loss/critic"])


def test_ou_noise_follows_its_recursion_per_copy_and_resets_one_copy():
    rng, ref = np.random.default_rng(7), np.random.default_rng(7)
    noise = ActionNoise("ou", 2, rng, sigma=0.3, theta=0.15)
    x = np.zeros((3, 2))
    for _ in range(4):
        x = x - 0.15 * x + 0.3 * ref.standard_normal((3, 2))
        np.testing.assert_allclose(noise.sample(3), x)
    noise.end_episode(2)
    assert np.all(noise.state[2] == 0) and np.array_equal(noise.state[:2], x[:2])


def test_noise_sigma_decays_per_episode_down_to_its_floor():
    noise = ActionNoise("gaussian", 2, np.random.default_rng(0), sigma=0.4, decay=0.5, sigma_min=0.1)
    sigmas = []
    for _ in range(3):
        noise.end_episode()
        sigmas.append(noise.sigma)
    assert sigmas == pytest.approx([0.2, 0.1, 0.1])
    assert noise.sample(1000).std() == pytest.approx(0.1, rel=0.1)
