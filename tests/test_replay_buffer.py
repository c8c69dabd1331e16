import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlrun.errors import ConfigError
from rlrun.replay.buffer import ReplayBuffer

OBS = spaces.Box(-10, 10, shape=(1,), dtype=np.float32)
ACT = spaces.Box(-1, 1, shape=(1,), dtype=np.float32)


def fill(buf, rewards, terminal_at=None, truncate_at=None):
    for t, r in enumerate(rewards):
        buf.add(np.array([t]), np.array([0.0]), r, np.array([t + 1]), t == terminal_at, t == truncate_at)


def stored(buf):
    n = buf.size
    return buf.obs[:n, 0].tolist(), buf.rewards[:n].tolist(), buf.next_obs[:n, 0].tolist(), \
        buf.dones[:n].tolist(), buf.discounts[:n].tolist()


def test_one_step_transitions_are_stored_as_given():
    buf = ReplayBuffer(OBS, ACT, capacity=10, gamma=0.9)
    fill(buf, [1.0, 2.0, 3.0], terminal_at=2)
    obs, rew, nxt, done, disc = stored(buf)
    assert obs == [0, 1, 2] and rew == [1, 2, 3] and nxt == [1, 2, 3]
    assert done == [0, 0, 1] and disc == pytest.approx([0.9] * 3)


def test_n_step_returns_bootstrap_from_the_nth_next_state():
    g = 0.5
    buf = ReplayBuffer(OBS, ACT, capacity=10, n_step=3, gamma=g)
    fill(buf, [1.0, 2.0, 4.0, 8.0, 16.0], terminal_at=4)
    obs, rew, nxt, done, disc = stored(buf)
    assert obs == [0, 1, 2, 3, 4]
    # full windows: R_t = r_t + g r_{t+1} + g^2 r_{t+2}, next state s_{t+3}, discount g^3
    assert rew[0] == pytest.approx(1 + g * 2 + g * g * 4) and nxt[0] == 3 and disc[0] == pytest.approx(g**3)
    assert rew[1] == pytest.approx(2 + g * 4 + g * g * 8) and nxt[1] == 4
    # the episode terminates at t=4: the last windows are shorter and masked (done=1)
    assert rew[2] == pytest.approx(4 + g * 8 + g * g * 16) and nxt[2] == 5 and done[2] == 1
    assert rew[3] == pytest.approx(8 + g * 16) and disc[3] == pytest.approx(g**2) and done[3] == 1
    assert rew[4] == pytest.approx(16) and disc[4] == pytest.approx(g) and done[4] == 1
    assert done[:2] == [0, 0]


def test_truncation_flushes_windows_but_still_bootstraps():
    buf = ReplayBuffer(OBS, ACT, capacity=10, n_step=4, gamma=0.9)
    fill(buf, [1.0, 1.0], truncate_at=1)
    obs, rew, nxt, done, disc = stored(buf)
    assert obs == [0, 1] and nxt == [2, 2] and done == [0, 0]
    assert rew == pytest.approx([1.9, 1.0]) and disc == pytest.approx([0.81, 0.9])


def test_ring_buffer_wraps_around_and_samples_only_filled_slots():
    buf = ReplayBuffer(OBS, ACT, capacity=4, gamma=0.9, seed=0)
    fill(buf, [float(i) for i in range(10)])
    assert len(buf) == 4 and buf.pos == 2
    assert sorted(buf.obs[:, 0].tolist()) == [6, 7, 8, 9]
    batch = buf.sample(64)
    assert set(batch.obs[:, 0].tolist()) <= {6.0, 7.0, 8.0, 9.0}
    assert batch.obs.dtype == torch.float32 and batch.rewards.shape == (64,)


def test_state_dict_round_trip_including_pending_n_step_window():
    a = ReplayBuffer(OBS, ACT, capacity=8, n_step=3, gamma=0.9, seed=1)
    fill(a, [1.0, 2.0, 3.0, 4.0])  # two transitions pending
    b = ReplayBuffer(OBS, ACT, capacity=8, n_step=3, gamma=0.9, seed=99)
    b.load_state_dict(a.state_dict())
    for buf in (a, b):
        buf.add(np.array([4]), np.array([0.0]), 5.0, np.array([5]), True, False)
    assert stored(a) == stored(b)
    assert np.array_equal(a.sample(16).indices, b.sample(16).indices)


def test_invalid_settings_are_config_errors():
    with pytest.raises(ConfigError, match="n_step"):
        ReplayBuffer(OBS, ACT, n_step=0)
    with pytest.raises(ConfigError, match="capacity"):
        ReplayBuffer(OBS, ACT, capacity=0)


def test_offline_dataset_gets_the_same_n_step_returns_as_online_adds():
    """Two episodes (terminated at t=3, truncated at t=4) as `rlrun collect` writes them: add_dataset with
    n_step=3 stores exactly what adding the steps one by one stores."""
    rng = np.random.default_rng(0)
    lengths, ends = [4, 5], ["terminated", "truncated"]
    rows = {k: [] for k in ("obs", "actions", "rewards", "next_obs", "terminated", "truncated", "episode")}
    online = ReplayBuffer(OBS, ACT, capacity=20, gamma=0.9, n_step=3)
    for ep, (length, end) in enumerate(zip(lengths, ends, strict=True)):
        for t in range(length):
            r, last = float(rng.normal()), t == length - 1
            term, trunc = last and end == "terminated", last and end == "truncated"
            online.add(np.array([10 * ep + t]), np.array([0.5]), r, np.array([10 * ep + t + 1]), term, trunc)
            for k, v in zip(rows, ([10 * ep + t], [0.5], r, [10 * ep + t + 1], term, trunc, ep), strict=True):
                rows[k].append(v)
    offline = ReplayBuffer(OBS, ACT, capacity=20, gamma=0.9, n_step=3)
    offline.add_dataset({k: np.asarray(v, dtype=np.float32 if k not in ("terminated", "truncated", "episode")
                                       else None) for k, v in rows.items()})
    assert offline.size == online.size == 9
    for name in ("obs", "actions", "rewards", "next_obs", "dones", "discounts"):
        np.testing.assert_allclose(getattr(offline, name)[:9], getattr(online, name)[:9], rtol=1e-6, err_msg=name)
    with pytest.raises(ConfigError, match="episode"):
        ReplayBuffer(OBS, ACT, capacity=20, n_step=3).add_dataset(
            {k: np.asarray(v) for k, v in rows.items() if k != "episode"})
