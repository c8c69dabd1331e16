"""Prioritized replay: sampling frequencies, IS weights, priority updates, wrap-around, persistence."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from gymnasium import spaces
from hydra.utils import instantiate
from omegaconf import OmegaConf

from rlrun.compose import CONF_DIR
from rlrun.errors import ConfigError
from rlrun.replay.prioritized import PrioritizedReplayBuffer
from rlrun.replay.sumtree import SumTree

OBS = spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
ACT = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
CONF = CONF_DIR / "replay"


def chi2_critical(df: int, z: float = 3.09) -> float:
    """Upper chi-square quantile (z=3.09: p = 0.001) by the Wilson-Hilferty approximation."""
    c = 2.0 / (9.0 * df)
    return df * (1.0 - c + z * math.sqrt(c)) ** 3


def fill(buf: PrioritizedReplayBuffer, n: int, start: int = 0) -> None:
    for t in range(start, start + n):
        o = np.full(3, t, dtype=np.float32)
        buf.add(o, np.zeros(2, np.float32), float(t), o + 1, False, False)


def draw_counts(buf: PrioritizedReplayBuffer, draws: int, batch: int = 256) -> np.ndarray:
    counts = np.zeros(buf.capacity, dtype=np.int64)
    for _ in range(draws // batch):
        b = buf.sample(batch)
        np.add.at(counts, b.indices, 1)
    return counts


def test_sampling_frequencies_match_priorities_chi_square():
    buf = PrioritizedReplayBuffer(OBS, ACT, capacity=64, alpha=0.7, seed=1)
    fill(buf, 50)
    rng = np.random.default_rng(0)
    td = rng.exponential(1.0, size=50)
    td[7] = 0.0  # eps keeps it drawable
    buf.update_priorities(np.arange(50), td)
    p = (np.abs(td) + buf.eps) ** 0.7
    probs = p / p.sum()
    np.testing.assert_allclose(buf.priorities_to_probabilities(np.arange(50)), probs, rtol=1e-9)

    draws = 256 * 400  # 102,400
    counts = draw_counts(buf, draws)
    assert counts[50:].sum() == 0  # empty slots are never drawn
    expected = probs * draws
    stat = float(((counts[:50] - expected) ** 2 / expected).sum())
    assert stat < chi2_critical(49), stat
    # the same test rejects a wrong distribution (uniform) by a wide margin, so it has power
    uniform = np.full(50, draws / 50)
    assert float(((counts[:50] - uniform) ** 2 / uniform).sum()) > 10 * chi2_critical(49)


def test_is_weights_match_formula_and_beta_anneals():
    buf = PrioritizedReplayBuffer(OBS, ACT, capacity=32, alpha=0.6, beta0=0.4, beta_steps=1000, seed=3)
    fill(buf, 20)
    buf.update_priorities(np.arange(20), np.linspace(0.0, 5.0, 20))
    for step, beta in [(0, 0.4), (500, 0.7), (1000, 1.0), (5000, 1.0)]:
        buf.on_step(step)
        assert buf.beta == pytest.approx(beta)
        b = buf.sample(64)
        p = (np.linspace(0.0, 5.0, 20) + 1e-6) ** 0.6
        probs = p[b.indices] / p.sum()
        w = (20 * probs) ** (-beta)
        np.testing.assert_allclose(b.weights.numpy(), w / w.max(), rtol=1e-5)
        assert b.weights.max().item() == pytest.approx(1.0)


def test_priority_update_shifts_distribution_and_new_items_get_max_priority():
    buf = PrioritizedReplayBuffer(OBS, ACT, capacity=16, alpha=1.0, seed=0)
    fill(buf, 10)
    buf.update_priorities(np.arange(10), np.ones(10))
    before = draw_counts(buf, 256 * 40)[:10] / (256 * 40)
    np.testing.assert_allclose(before, 0.1, atol=0.01)
    buf.update_priorities(np.array([3]), np.array([9.0]))  # p_3 = 9, others 1: P(3) = 9/18
    after = draw_counts(buf, 256 * 40)[:10] / (256 * 40)
    assert after[3] == pytest.approx(0.5, abs=0.01)
    assert buf.max_priority == pytest.approx(9.0 + 1e-6)
    fill(buf, 1, start=10)  # enters with the running max priority
    assert buf.tree.get(np.array([10]))[0] == pytest.approx(9.0 + 1e-6)


def test_wrap_around_overwrites_slots_and_priorities():
    buf = PrioritizedReplayBuffer(OBS, ACT, capacity=8, alpha=1.0, seed=0)
    fill(buf, 8)
    buf.update_priorities(np.arange(8), np.full(8, 0.5))
    buf.update_priorities(np.array([2]), np.array([4.0]))
    fill(buf, 12, start=8)  # 20 transitions into 8 slots: slots hold t = 12..19
    assert len(buf) == 8 and buf.pos == 4
    assert sorted(buf.obs[:, 0].tolist()) == list(range(12, 20))
    # every slot was rewritten since, so each carries the running max priority again
    np.testing.assert_allclose(buf.tree.leaves, 4.0 + 1e-6)
    assert buf.tree.total() == pytest.approx(buf.tree.leaves.sum())
    b = buf.sample(256)
    assert set(b.obs[:, 0].tolist()) <= set(range(12, 20))


def test_checkpoint_round_trip_with_weights_only_load():
    buf = PrioritizedReplayBuffer(OBS, ACT, capacity=100, n_step=3, gamma=0.9, beta_steps=10, seed=5)
    fill(buf, 40)
    buf.update_priorities(np.arange(0, 37, 2), np.arange(19) / 3.0)
    buf.on_step(4)
    raw = io.BytesIO()
    torch.save(buf.state_dict(), raw)
    raw.seek(0)
    state = torch.load(raw, weights_only=True)
    clone = PrioritizedReplayBuffer(OBS, ACT, capacity=100, n_step=3, gamma=0.9, beta_steps=10, seed=99)
    clone.load_state_dict(state)
    np.testing.assert_array_equal(clone.tree.leaves, buf.tree.leaves)
    assert clone.beta == buf.beta and clone.max_priority == buf.max_priority
    a, b = buf.sample(32), clone.sample(32)
    np.testing.assert_array_equal(a.indices, b.indices)
    torch.testing.assert_close(a.weights, b.weights)
    torch.testing.assert_close(a.rewards, b.rewards)


def test_n_step_with_priorities():
    buf = PrioritizedReplayBuffer(OBS, ACT, capacity=50, n_step=3, gamma=0.5, seed=0)
    fill(buf, 10)  # rewards t: R_0 = 0 + 0.5*1 + 0.25*2 = 1.0
    assert len(buf) == 8  # the last two windows are still pending (no episode end yet)
    b = buf.sample(64)
    np.testing.assert_allclose(b.discounts.numpy(), 0.125)
    t = b.obs[:, 0].numpy()
    np.testing.assert_allclose(b.rewards.numpy(), t + 0.5 * (t + 1) + 0.25 * (t + 2))


@pytest.mark.parametrize(
    "kwargs, key",
    [({"alpha": -0.1}, "replay.alpha"), ({"beta0": 1.5}, "replay.beta0"), ({"beta0": -0.1}, "replay.beta0"),
     ({"eps": 0.0}, "replay.eps"), ({"beta_steps": 0}, "replay.beta_steps")],
)
def test_out_of_range_options_raise_config_error(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        PrioritizedReplayBuffer(OBS, ACT, capacity=10, **kwargs)


def test_non_finite_td_error_is_rejected():
    buf = PrioritizedReplayBuffer(OBS, ACT, capacity=10)
    fill(buf, 5)
    with pytest.raises(FloatingPointError):
        buf.update_priorities(np.arange(2), np.array([1.0, np.nan]))


def test_sum_tree_search_is_exact_prefix_search():
    rng = np.random.default_rng(0)
    for capacity in (1, 7, 1000, 5000):  # a single level, a partial level, and a descended tree
        tree = SumTree(capacity)
        p = rng.random(capacity) * (rng.random(capacity) < 0.7)  # ~30% zero-priority slots
        p[0] = max(p[0], 0.1)
        tree.set(np.arange(capacity), p)
        cum = np.cumsum(p)
        v = rng.random(20000) * cum[-1]
        np.testing.assert_array_equal(tree.find(v), np.searchsorted(cum, v, side="right"))
        assert tree.total() == pytest.approx(cum[-1])
        hits = tree.sample(4096, rng)
        assert np.all(p[hits] > 0)


def test_config_file_composes_with_total_steps():
    cfg = OmegaConf.merge(
        OmegaConf.create({"total_steps": 1234}),
        {"replay": OmegaConf.load(CONF / "prioritized.yaml")},
    )
    buf = instantiate(cfg.replay, observation_space=OBS, action_space=ACT, capacity=10)
    assert isinstance(buf, PrioritizedReplayBuffer)
    assert buf.beta_steps == 1234 and buf.alpha == 0.6 and buf.beta0 == 0.4
