"""`vector=async`: one worker process per env copy (forkserver), observations in shared memory, everything
else through a pipe per worker; a copy that raises, dies or hangs past `env_timeout` is one EnvCopyError line
that names it. See rlrun/collect/pool.py for the interface."""

from __future__ import annotations

import contextlib
import gc
import multiprocessing as mp
import signal
from collections.abc import Iterator
from multiprocessing.connection import Connection, wait
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np
from gymnasium import spaces

from rlrun.collect.factory import EnvFactory
from rlrun.collect.pool import EnvPool, StepResult, describe_error, unwrapped_attr
from rlrun.errors import ConfigError, EnvCopyError


def _worker(index: int, factory: EnvFactory, conn: Connection, shm_name: str, shape: tuple, dtype: str) -> None:
    # Ctrl-C and SIGTERM go to the whole process group; the trainer answers them (it checkpoints, which needs
    # every copy's state), so the workers must outlive them. They exit when the trainer closes the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    shm = SharedMemory(name=shm_name)
    obs_rows = np.ndarray(shape, dtype=np.dtype(dtype), buffer=shm.buf)
    env = None
    try:
        try:
            env = factory(index)
            gc.collect()
            gc.freeze()  # what exists now lives as long as the worker: out of the cyclic collector's passes
            conn.send(("ok", (env.observation_space, env.action_space)))
        except Exception as e:
            conn.send(("error", describe_error(e)))
            return
        while True:
            command, data = conn.recv()
            if command == "close":
                break
            try:
                if command == "step":
                    o, r, term, trunc, info = env.step(data)
                    obs_rows[index] = o
                    conn.send(("ok", (float(r), bool(term), bool(trunc), info)))
                elif command == "reset":
                    o, info = env.reset(seed=data)
                    obs_rows[index] = o
                    conn.send(("ok", info))
                elif command == "call":
                    name, args = data
                    conn.send(("ok", getattr(env.unwrapped, name)(*args)))
                elif command == "attr":
                    conn.send(("ok", unwrapped_attr(env, *data)))
            except Exception as e:
                conn.send(("error", describe_error(e)))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        pass  # the trainer went away
    finally:
        if env is not None:
            env.close()
        del obs_rows
        shm.close()


@contextlib.contextmanager
def _standard_start_method(method: str) -> Iterator[None]:
    """Inside a joblib (loky) sweep job the process-wide start method is 'loky', which a new worker cannot
    resolve when it unpickles its preparation data; name a standard one while the workers start."""
    current = mp.get_start_method(allow_none=True)
    if current in (None, "fork", "spawn", "forkserver"):
        yield
        return
    mp.set_start_method(method, force=True)
    try:
        yield
    finally:
        mp.set_start_method(current, force=True)


class ProcessPool(EnvPool):
    """One worker process per copy (`vector=async`). A step sends every copy its action first and then waits
    for all answers, so the copies' simulators run at the same time on different cores."""

    def __init__(self, factory: EnvFactory, num_envs: int, timeout: float, context: str = "forkserver") -> None:
        self.num_envs = num_envs
        self.timeout = float(timeout)
        # A probe copy in this process gives the spaces (and so the size of the shared observation rows); it is
        # closed right away. The forkserver context keeps the trainer's threads and torch state out of workers.
        probe = factory(0)
        self.observation_space, self.action_space = probe.observation_space, probe.action_space
        probe.close()
        if not isinstance(self.observation_space, spaces.Box):
            raise ConfigError(f"vector=async needs a Box observation space, got {self.observation_space}")
        shape = (num_envs, *self.observation_space.shape)
        dtype = np.dtype(self.observation_space.dtype)
        self.shm = SharedMemory(create=True, size=max(1, int(np.prod(shape)) * dtype.itemsize))
        self.obs_rows = np.ndarray(shape, dtype=dtype, buffer=self.shm.buf)
        ctx = mp.get_context(context)
        if context == "forkserver":
            ctx.set_forkserver_preload(["rlrun.collect.factory"])
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        with _standard_start_method(context):
            for i in range(num_envs):
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=_worker, args=(i, factory, child, self.shm.name, shape, dtype.str),
                                   name=f"rlrun-env-{i}", daemon=True)
                proc.start()
                child.close()
                self.conns.append(parent)
                self.procs.append(proc)
        try:
            self._gather(list(range(num_envs)), "start")
        except Exception:
            self.close()
            raise

    def _send(self, i: int, message: tuple) -> None:
        try:
            self.conns[i].send(message)
        except (BrokenPipeError, OSError):
            raise EnvCopyError(f"env copy {i}: {self._death(i)}") from None

    def _death(self, i: int) -> str:
        proc = self.procs[i]
        proc.join(timeout=1.0)
        code = proc.exitcode
        return f"worker process {proc.pid} died (exit code {code})" if code is not None else \
            f"worker process {proc.pid} closed its pipe"

    def _gather(self, idx: list[int], what: str) -> list[Any]:
        """Wait for one answer from each copy in `idx`; the first failure stops everything with its copy's name."""
        pending = {self.conns[i]: i for i in idx}
        answers: dict[int, Any] = {}
        while pending:
            ready = wait(list(pending), timeout=self.timeout)
            if not ready:
                late = sorted(pending.values())
                raise EnvCopyError(f"env copy {late[0]}: no answer to {what} within {self.timeout:g} s "
                                   f"(env_timeout; copies {late} hang)")
            for conn in ready:
                i = pending.pop(conn)
                try:
                    status, payload = conn.recv()
                except (EOFError, ConnectionError):
                    raise EnvCopyError(f"env copy {i}: {self._death(i)} during {what}") from None
                if status == "error":
                    raise EnvCopyError(f"env copy {i}: {payload}")
                answers[i] = payload
        return [answers[i] for i in idx]

    def reset(self, seeds, indices=None):
        idx = self._indices(indices)
        for i, seed in zip(idx, seeds, strict=True):
            self._send(i, ("reset", seed))
        infos = self._gather(idx, "reset")
        return self.obs_rows[idx], infos  # fancy indexing copies

    def step(self, actions, indices=None):
        idx = self._indices(indices)
        for i, action in zip(idx, actions, strict=True):
            self._send(i, ("step", action))
        answers = self._gather(idx, "step")
        rewards, terminated, truncated, infos = zip(*answers, strict=True)
        return StepResult(self.obs_rows[idx], np.asarray(rewards, dtype=np.float64),
                          np.asarray(terminated, dtype=bool), np.asarray(truncated, dtype=bool), list(infos))

    def call(self, method, args=None, indices=None):
        idx = self._indices(indices)
        args = args if args is not None else [()] * len(idx)
        for i, a in zip(idx, args, strict=True):
            self._send(i, ("call", (method, tuple(a))))
        return self._gather(idx, method)

    def attr(self, name, default=None):
        self._send(0, ("attr", (name, default)))
        return self._gather([0], name)[0]

    def close(self) -> None:
        for conn, proc in zip(self.conns, self.procs, strict=True):
            if proc.is_alive():
                try:
                    conn.send(("close", None))
                except (BrokenPipeError, OSError):
                    pass
        for conn, proc in zip(self.conns, self.procs, strict=True):
            proc.join(timeout=5.0)
            if proc.is_alive():
                proc.kill()
                proc.join()
            conn.close()
        self.conns, self.procs = [], []
        if getattr(self, "shm", None) is not None:
            del self.obs_rows
            self.shm.close()
            self.shm.unlink()
            self.shm = None


