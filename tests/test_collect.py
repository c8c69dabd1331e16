"""rlrun collect: a dataset of time-ordered transitions with a schema, loadable by the replay buffer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rlrun.commands.collect import collect_command
from rlrun.envs.inverter import InverterEnv
from rlrun.errors import ConfigError
from rlrun.replay.buffer import ReplayBuffer
from rlrun.replay.dataset import read_schema

ARGS = ["env=inverter", "agent=heuristic", "reward=export", "env.episode_s=40", "episodes=3", "seed=7"]


def test_collect_writes_a_consistent_dataset(tmp_path):
    out = tmp_path / "ds"
    assert collect_command([*ARGS, f"out={out}"]) == 0
    with np.load(out / "dataset.npz", allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    n = 3 * 40
    assert data["obs"].shape == (n, 30) and data["next_obs"].shape == (n, 30)
    assert data["actions"].shape == (n, 3) and data["rewards"].shape == (n,)
    assert data["terminated"].dtype == bool and not data["terminated"].any()
    assert data["truncated"].sum() == 3 and data["truncated"][39] and data["truncated"][-1]
    same_ep = data["episode"][1:] == data["episode"][:-1]
    np.testing.assert_array_equal(data["obs"][1:][same_ep], data["next_obs"][:-1][same_ep])
    schema = read_schema(data)
    assert schema["keys"]["obs"] == ["float32", [n, 30]]
    meta = schema["metadata"]
    assert meta["episodes"] == 3 and meta["seed"] == 7 and meta["agent"]["_target_"].endswith("ExportPI")
    assert len(meta["episode_returns"]) == 3
    assert meta["episode_returns"][0] == pytest.approx(float(data["rewards"][:40].sum()), rel=1e-5)
    assert (out / "config.yaml").is_file()

    env = InverterEnv(episode_s=40)
    buf = ReplayBuffer(env.observation_space, env.action_space, capacity=1000)
    buf.add_dataset(data)
    assert len(buf) == n
    json.dumps(meta)  # plain JSON


def test_collect_is_reproducible(tmp_path):
    collect_command([*ARGS, f"out={tmp_path / 'a'}"])
    collect_command([*ARGS, f"out={tmp_path / 'b'}"])
    with np.load(tmp_path / "a" / "dataset.npz") as a, np.load(tmp_path / "b" / "dataset.npz") as b:
        for key in ("obs", "actions", "rewards"):
            np.testing.assert_array_equal(a[key], b[key])


def test_collect_rejects_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="episodes"):
        collect_command(["env=inverter", "reward=export", "episodes=0"])
    with pytest.raises(ConfigError, match="unexpected argument"):
        collect_command(["env=inverter", "oops"])
    with pytest.raises(ConfigError, match="explore"):
        collect_command(["env=inverter", "reward=export", "explore=maybe"])
    collect_command([*ARGS, f"out={tmp_path}"])
    with pytest.raises(ConfigError, match="already holds"):
        collect_command([*ARGS, f"out={tmp_path}"])
