"""One checkpoint format: a dict of tensors and plain Python, written atomically, loaded weights_only; and the
lock that makes a run directory belong to one process.

    {"format": FORMAT, "agent": agent.state_dict(), "replay": replay.state_dict() | None,
     "trainer": {...counters, current obs, episode accumulators...}, "rng": {...}, "env": env state | None}
"""

from __future__ import annotations

import errno
import fcntl
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from rlrun.errors import CheckpointError, RunDirBusyError

FORMAT = "rlrun-checkpoint-v1"
CHECKPOINT_NAMES = ("best", "last")
TMP_GLOB = ".*.pt.*.tmp"  # save_checkpoint's temp files: `.last.pt.<random>.tmp`


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write to a temp file in the same directory, fsync, then rename over the target: a crash mid-write
    leaves the previous checkpoint intact. The file gets the permissions any other file of the run gets
    (mkstemp's are 0600). A full disk or an unwritable directory is a CheckpointError (one line)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise CheckpointError(f"cannot write checkpoint {path}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch reports a full disk as RuntimeError (inline_container.cc)
        Path(tmp).unlink(missing_ok=True)
        raise CheckpointError(f"cannot write checkpoint {path} ({_write_failure(e)}); the previous "
                              f"checkpoint is intact") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_failure(e: BaseException) -> str:
    """The reason of a failed write in a few words: torch's stream writer hides errno behind a long message."""
    if isinstance(e, OSError) and e.errno is not None:
        return os.strerror(e.errno)
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return "disk full or write error" if "file write failed" in text else text


def remove_orphaned_tmp(ckpt_dir: Path) -> list[Path]:
    """Delete temp files a killed writer left behind (they can be as large as a checkpoint with its replay).
    Only the run directory's lock holder may call this: another writer's temp file would be in flight."""
    removed = []
    for tmp in Path(ckpt_dir).glob(TMP_GLOB) if Path(ckpt_dir).is_dir() else []:
        try:
            tmp.unlink()
            removed.append(tmp)
        except FileNotFoundError:
            pass
    return removed


# ---- run directory lock --------------------------------------------------------------------------------

LOCK_NAME = ".rlrun.lock"
_HELD: dict[str, list[int]] = {}  # lock path -> [fd, depth]: re-entrant within a process


def _close_held_in_child() -> None:
    """A forked child (an env worker) must not keep the parent's lock alive after the parent has died."""
    for fd, _ in _HELD.values():
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


os.register_at_fork(after_in_child=_close_held_in_child)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def _still_linked(path: Path, fd: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


class RunDirLock:
    """An exclusive `fcntl.flock` on `<run dir>/.rlrun.lock`, so a run directory belongs to one process.

    The kernel drops the lock when its holder dies, so a killed run never blocks its resume. A lock still held
    while the pid written in it is dead belongs to an orphaned descendant of a dead run: it is stale, and a
    fresh lock file replaces it. Re-entrant within one process (the CLI locks before Hydra writes into the
    directory, the trainer again)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._key = str(self.path.resolve())
        self.held = False

    def acquire(self) -> RunDirLock:
        if self.held:
            return self
        if self._key in _HELD:
            _HELD[self._key][1] += 1
        else:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            _HELD[self._key] = [self._take(), 1]
        self.held = True
        return self

    def _take(self) -> int:
        for _ in range(5):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                owner = _owner(fd)
                stale = owner is not None and not _pid_alive(owner) and _still_linked(self.path, fd)
                os.close(fd)
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise CheckpointError(f"cannot lock run directory {self.run_dir}: {e.strerror}") from None
                if stale:
                    self.path.unlink(missing_ok=True)
                    continue
                who = f" (pid {owner})" if owner is not None else ""
                raise RunDirBusyError(f"run directory {self.run_dir} is in use by another rlrun process{who}; "
                                      f"wait for it to finish or use another directory") from None
            if not _still_linked(self.path, fd):  # the previous holder removed it between open and flock
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        raise RunDirBusyError(f"run directory {self.run_dir} is being locked by other processes; try again")

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        entry = _HELD.get(self._key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _HELD[self._key]
        fd = entry[0]
        if _still_linked(self.path, fd):
            self.path.unlink(missing_ok=True)  # before unlocking: a waiter re-checks the link after its flock
        os.close(fd)

    def __enter__(self) -> RunDirLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


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
