"""The on-policy rollout buffer: GAE(lambda) by hand, minibatch coverage, checkpoint round trip."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from rlrun.replay.rollout import PolicyStep, RolloutBuffer

GAMMA, LAM = 0.9, 0.8

# two copies, three steps: copy 0 terminates after t=1; copy 1 is truncated after t=0 (the trainer has added
# gamma * V(final_obs) = 0.9 * 3.0 to that reward) and then runs on into the last-value bootstrap
VALUES = np.array([[1.0, 2.0], [0.5, 1.5], [0.2, 0.4]], dtype=np.float32)
REWARDS = np.array([[1.0, 0.5 + 0.9 * 3.0], [2.0, 1.0], [0.5, -1.0]], dtype=np.float32)
ENDS = np.array([[0, 1], [1, 0], [0, 0]], dtype=np.float32)
LAST_VALUES = np.array([0.3, -0.7], dtype=np.float32)
# by hand, gamma * lambda = 0.72:
#   copy 0: A2 = 0.5 + 0.9*0.3 - 0.2 = 0.57;  A1 = 2.0 - 0.5 = 1.5 (ends: no bootstrap, no carry);
#           A0 = (1.0 + 0.9*0.5 - 1.0) + 0.72*1.5 = 0.45 + 1.08 = 1.53
#   copy 1: A2 = -1.0 + 0.9*(-0.7) - 0.4 = -2.03;  A1 = (1.0 + 0.9*0.4 - 1.5) + 0.72*(-2.03) = -1.6016;
#           A0 = 3.2 - 2.0 = 1.2 (truncated: its bootstrap is in the reward, nothing crosses the boundary)
EXPECTED_ADV = np.array([[1.53, 1.2], [1.5, -1.6016], [0.57, -2.03]], dtype=np.float32)


def step_row(t: int, num_envs: int = 2, obs_dim: int = 3, raw_dim: int = 2) -> PolicyStep:
    base = float(t * 10)
    return PolicyStep(
        actions=[None] * num_envs,
        raw=np.full((num_envs, raw_dim), base + 1, dtype=np.float32) + np.arange(num_envs)[:, None],
        log_probs=np.full(num_envs, -base, dtype=np.float32),
        values=VALUES[t] if num_envs == 2 else np.zeros(num_envs, dtype=np.float32),
        obs=np.full((num_envs, obs_dim), base, dtype=np.float32) + np.arange(num_envs)[:, None],
    )


def filled(mask_dim: int | None = None) -> RolloutBuffer:
    buf = RolloutBuffer(3, 2, obs_dim=3, raw_dim=2, mask_dim=mask_dim)
    for t in range(3):
        masks = np.array([[1, 0, 1], [0, 1, 1]], dtype=bool) if mask_dim else None
        buf.add(step_row(t), REWARDS[t], ENDS[t], masks)
    return buf


def test_gae_matches_hand_computed_case_with_termination_truncation_and_bootstrap() -> None:
    buf = filled()
    assert buf.full
    buf.compute_advantages(LAST_VALUES, GAMMA, LAM)
    np.testing.assert_allclose(buf.advantages, EXPECTED_ADV, atol=1e-6)
    np.testing.assert_allclose(buf.returns, EXPECTED_ADV + VALUES, atol=1e-6)


def test_gae_lambda_one_is_discounted_return_minus_value() -> None:
    """lambda = 1: A_t = sum_k gamma^k r_{t+k} (+ bootstrap) - V(s_t), independent of the other values."""
    buf = RolloutBuffer(4, 1, obs_dim=1, raw_dim=1)
    rewards = [1.0, 2.0, 3.0, 4.0]
    for t, r in enumerate(rewards):
        buf.add(PolicyStep([None], np.zeros((1, 1), np.float32), np.zeros(1, np.float32),
                           np.array([0.5 * t], np.float32), np.zeros((1, 1), np.float32)),
                np.array([r], np.float32), np.zeros(1, np.float32))
    buf.compute_advantages(np.array([10.0], np.float32), 0.5, 1.0)
    ret0 = 1.0 + 0.5 * 2.0 + 0.25 * 3.0 + 0.125 * 4.0 + 0.0625 * 10.0
    assert buf.returns[0, 0] == pytest.approx(ret0)
    assert buf.advantages[0, 0] == pytest.approx(ret0 - 0.0)


def test_minibatches_cover_every_row_once_with_its_own_data() -> None:
    buf = filled(mask_dim=3)
    buf.compute_advantages(LAST_VALUES, GAMMA, LAM)
    batches = list(buf.minibatches(4, np.random.default_rng(0)))
    assert [len(b) for b in batches] == [4, 2]  # 6 rows; the last batch is the remainder, as SB3
    obs = torch.cat([b.obs for b in batches])
    assert sorted(obs[:, 0].tolist()) == [0.0, 1.0, 10.0, 11.0, 20.0, 21.0]
    for b in batches:
        t = (b.obs[:, 0] // 10).long()
        i = (b.obs[:, 0] % 10).long()
        assert torch.equal(b.raw[:, 0], b.obs[:, 0] + 1)  # rows stay together through the shuffle
        assert torch.equal(b.old_log_probs, -10.0 * t.float())
        np.testing.assert_allclose(b.advantages.numpy(), EXPECTED_ADV[t, i], atol=1e-6)
        np.testing.assert_allclose(b.old_values.numpy(), VALUES[t, i])
        assert b.masks is not None and b.masks.dtype == torch.bool
        assert torch.equal(b.masks[:, 0], i == 0)


def test_misuse_is_refused() -> None:
    buf = RolloutBuffer(2, 2, obs_dim=3, raw_dim=2)
    buf.add(step_row(0), REWARDS[0], ENDS[0])
    with pytest.raises(RuntimeError, match="full rollout"):
        buf.compute_advantages(LAST_VALUES, GAMMA, LAM)
    buf.add(step_row(1), REWARDS[1], ENDS[1])
    with pytest.raises(RuntimeError, match="compute_advantages"):
        next(buf.minibatches(2, np.random.default_rng(0)))
    with pytest.raises(RuntimeError, match="full"):
        buf.add(step_row(2), REWARDS[2], ENDS[2])
    buf.reset()
    assert len(buf) == 0 and not buf.full


def test_half_full_rollout_resumes_exactly_through_a_weights_only_checkpoint() -> None:
    a = RolloutBuffer(3, 2, obs_dim=3, raw_dim=2, mask_dim=3)
    masks = np.array([[1, 0, 1], [0, 1, 1]], dtype=bool)
    for t in range(2):
        a.add(step_row(t), REWARDS[t], ENDS[t], masks)
    blob = io.BytesIO()
    torch.save(a.state_dict(), blob)
    blob.seek(0)
    b = RolloutBuffer(3, 2, obs_dim=3, raw_dim=2, mask_dim=3)
    b.load_state_dict(torch.load(blob, weights_only=True))
    assert b.pos == 2 and not b.full
    for buf in (a, b):
        buf.add(step_row(2), REWARDS[2], ENDS[2], masks)
        buf.compute_advantages(LAST_VALUES, GAMMA, LAM)
    for name in (*RolloutBuffer._ARRAYS, "masks"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    ba = next(a.minibatches(6, np.random.default_rng(3)))
    bb = next(b.minibatches(6, np.random.default_rng(3)))
    assert torch.equal(ba.obs, bb.obs) and torch.equal(ba.returns, bb.returns)

    with pytest.raises(ValueError, match="shape"):
        RolloutBuffer(4, 2, obs_dim=3, raw_dim=2, mask_dim=3).load_state_dict(a.state_dict())
