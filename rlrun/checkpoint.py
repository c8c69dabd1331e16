"""One checkpoint format: a dict of tensors and plain Python, written atomically, loaded weights_only.

    {"format": FORMAT, "agent": agent.state_dict(), "replay": replay.state_dict() | None,
     "trainer": {...counters, current obs, episode accumulators...}, "rng": {...}, "env": env state | None}
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from rlrun.errors import CheckpointError

FORMAT = "rlrun-checkpoint-v1"
CHECKPOINT_NAMES = ("best", "last")


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write to a temp file in the same directory, fsync, then rename over the target: a crash mid-write
    leaves the previous checkpoint intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, wrong magic, unpickling refused, ...
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable ({reason})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not an rlrun checkpoint (expected format {FORMAT})")
    return data


def resolve_checkpoint(run_dir: Path, which: str = "best") -> Path:
    """`best` / `last` name checkpoints/<which>.pt in the run dir (best falls back to last); anything else
    is a path."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {run_dir} does not exist")
    if which in CHECKPOINT_NAMES:
        ckpt_dir = run_dir / "checkpoints"
        for name in (which, "last"):
            candidate = ckpt_dir / f"{name}.pt"
            if candidate.is_file():
                return candidate
        raise CheckpointError(f"run directory {run_dir} has no checkpoints (looked for checkpoints/{which}.pt)")
    path = Path(which)
    if not path.is_file():
        raise CheckpointError(f"checkpoint={which!r} is not best, last or an existing file")
    return path
