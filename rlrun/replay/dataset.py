"""Offline transition datasets (`rlrun collect` writes them, `dataset=<path>` and agent=dynamics read them):
a compressed .npz of obs, actions, rewards, next_obs, terminated (+ truncated, episode) and a JSON schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rlrun.errors import ConfigError

if TYPE_CHECKING:
    from rlrun.replay.buffer import ReplayBuffer

FORMAT = "rlrun-transitions-v1"
DATASET_KEYS = ("obs", "actions", "rewards", "next_obs", "terminated")


def load_dataset(path: str, like: ReplayBuffer | None = None) -> dict[str, np.ndarray]:
    """The arrays of a transitions .npz; with `like` (the replay buffer it goes into) checked against that
    buffer's row sizes first: numpy would silently broadcast a wrong action dim into every row."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise ConfigError(f"dataset={path!r} does not exist") from None
    except Exception as e:  # truncated zip (BadZipFile, zlib.error, EOFError), not an npz, pickled arrays
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"dataset={path!r} is not a readable .npz dataset ({reason})") from None
    if like is not None:
        check_dataset(arrays, path, obs_dim=like.obs.shape[1], action_dim=like.actions.shape[1])
    return arrays


def check_dataset(data: dict[str, np.ndarray], path: str, obs_dim: int, action_dim: int) -> None:
    """One ConfigError line for a dataset that does not fit the env: keys, rows, lengths, dims."""
    missing = [k for k in DATASET_KEYS if k not in data]
    if missing:
        raise ConfigError(f"dataset={path!r} lacks {', '.join(missing)}; a dataset holds "
                          f"{', '.join(DATASET_KEYS)} (see `rlrun collect`)")
    lengths = {k: len(data[k]) if data[k].ndim else 0 for k in DATASET_KEYS}
    if len(set(lengths.values())) > 1:
        raise ConfigError(f"dataset={path!r} has arrays of different lengths: "
                          f"{', '.join(f'{k} {n}' for k, n in lengths.items())}")
    n = lengths["rewards"]
    if n == 0:
        raise ConfigError(f"dataset={path!r} has no transitions")
    for key, want in (("obs", obs_dim), ("next_obs", obs_dim), ("actions", action_dim)):
        got = int(np.prod(data[key].shape[1:]))
        if got != want:
            raise ConfigError(f"dataset={path!r}: {key} rows have {got} values, the env needs {want}")


def save_dataset(path: Path, data: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    schema = {"format": FORMAT,
              "keys": {k: [str(v.dtype), list(v.shape)] for k, v in data.items()},
              "metadata": meta}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez_compressed(tmp, **data, schema=np.array(json.dumps(schema)))
    tmp.replace(path)


def read_schema(data: dict[str, np.ndarray] | Any) -> dict[str, Any]:
    """The schema entry of a dataset loaded with np.load (or an equivalent dict)."""
    if "schema" not in data:
        raise ConfigError("dataset has no 'schema' entry (not written by rlrun collect)")
    schema = json.loads(str(np.asarray(data["schema"])))
    if schema.get("format") != FORMAT:
        raise ConfigError(f"dataset format {schema.get('format')!r} is not {FORMAT}")
    return schema
