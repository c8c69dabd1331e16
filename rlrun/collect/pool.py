"""N copies of one environment stepped together: in this process, in worker processes, or in Ray actors.

Why not Gymnasium's `SyncVectorEnv`/`AsyncVectorEnv`: they merge the copies' `info` dicts into arrays whose dtype
is fixed by the first copy that reports a key (an `int` 0 from one copy truncates another copy's 0.5), they
autoreset, so the trainer would have to fish the final observation out of `info`, and a failing worker
surfaces as the bare exception plus a multi-line log that does not say which copy failed. rlrun's training loop
wants the opposite on all three counts, so the pools here return one `info` dict per copy, never reset a copy
by themselves (the caller resets the copies whose episode ended, with the seed it chooses) and turn every
failure into one `EnvCopyError` line that names the copy. Observations of the worker processes travel through
shared memory, the rest through a pipe per worker, as in Gymnasium's `AsyncVectorEnv`.

Every backend has the same interface:
    reset(seeds, indices)      -> (obs [k, obs_dim], infos)   reset the named copies (all by default)
    step(actions, indices)     -> StepResult                  step the named copies, one action each
    call(method, args, indices)-> [result per copy]           e.g. get_state / set_state of env.unwrapped
    attr(name)                 -> copy 0's env.unwrapped attribute (tensorboard_layout, ...)
    close()
"""

from __future__ import annotations

import abc
import contextlib
import logging
import multiprocessing as mp
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np
from gymnasium import spaces

from rlrun.collect.factory import EnvFactory
from rlrun.errors import ConfigError, EnvCopyError

VECTOR_MODES = ("sync", "async", "ray")


@dataclass
class StepResult:
    obs: np.ndarray  # [k, obs_dim] the copies' next observations (the last one when an episode ended)
    rewards: np.ndarray  # [k] float64
    terminated: np.ndarray  # [k] bool
    truncated: np.ndarray  # [k] bool
    infos: list[dict[str, Any]]


def _describe(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


class EnvPool(abc.ABC):
    num_envs: int
    observation_space: spaces.Space
    action_space: spaces.Space

    def _indices(self, indices: Sequence[int] | None) -> list[int]:
        return list(range(self.num_envs)) if indices is None else [int(i) for i in indices]

    @abc.abstractmethod
    def reset(self, seeds: Sequence[int | None], indices: Sequence[int] | None = None
              ) -> tuple[np.ndarray, list[dict[str, Any]]]: ...

    @abc.abstractmethod
    def step(self, actions: Sequence[Any], indices: Sequence[int] | None = None) -> StepResult: ...

    @abc.abstractmethod
    def call(self, method: str, args: Sequence[tuple] | None = None,
             indices: Sequence[int] | None = None) -> list[Any]: ...

    @abc.abstractmethod
    def attr(self, name: str, default: Any = None) -> Any: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    def has_method(self, name: str) -> bool:
        return bool(self.attr(f"__has__{name}", False))

    def __enter__(self) -> EnvPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _obs_array(obs_space: spaces.Space, rows: int) -> np.ndarray:
    return np.zeros((rows, *obs_space.shape), dtype=obs_space.dtype)


def _step_result(obs_space: spaces.Space, answers: list[tuple]) -> StepResult:
    """Stack the copies' (obs, reward, terminated, truncated, info) answers."""
    k = len(answers)
    out = StepResult(_obs_array(obs_space, k), np.zeros(k), np.zeros(k, bool), np.zeros(k, bool), [])
    for row, (o, r, term, trunc, info) in enumerate(answers):
        out.obs[row], out.rewards[row], out.terminated[row], out.truncated[row] = o, r, term, trunc
        out.infos.append(info)
    return out


def _unwrapped_attr(env: Any, name: str, default: Any) -> Any:
    if name.startswith("__has__"):
        return callable(getattr(env.unwrapped, name[len("__has__"):], None))
    return getattr(env.unwrapped, name, default)


# ---- in this process -----------------------------------------------------------------------------------

class SyncPool(EnvPool):
    """The copies live in this process and step one after the other (no parallelism, no copying)."""

    def __init__(self, factory: EnvFactory | None, num_envs: int, envs: list[Any] | None = None) -> None:
        self.num_envs = num_envs
        self.envs = list(envs) if envs is not None else [factory(i) for i in range(num_envs)]
        self.observation_space = self.envs[0].observation_space
        self.action_space = self.envs[0].action_space

    def _guard(self, i: int, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # the env's own error, attributed to its copy
            raise EnvCopyError(f"env copy {i}: {_describe(e)}") from e

    @classmethod
    def of(cls, env: Any) -> SyncPool:
        """A pool of one env that already exists (evaluation of a single env)."""
        return cls(None, 1, [env])

    def reset(self, seeds, indices=None):
        idx = self._indices(indices)
        obs, infos = _obs_array(self.observation_space, len(idx)), []
        for row, (i, seed) in enumerate(zip(idx, seeds, strict=True)):
            obs[row], info = self._guard(i, self.envs[i].reset, seed=seed)
            infos.append(info)
        return obs, infos

    def step(self, actions, indices=None):
        idx = self._indices(indices)
        return _step_result(self.observation_space, [self._guard(i, self.envs[i].step, action)
                                                     for i, action in zip(idx, actions, strict=True)])

    def call(self, method, args=None, indices=None):
        idx = self._indices(indices)
        args = args if args is not None else [()] * len(idx)
        return [self._guard(i, getattr(self.envs[i].unwrapped, method), *a) for i, a in zip(idx, args, strict=True)]

    def attr(self, name, default=None):
        return _unwrapped_attr(self.envs[0], name, default)

    def close(self) -> None:
        for env in self.envs:
            env.close()
        self.envs = []


# ---- worker processes ----------------------------------------------------------------------------------

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
            conn.send(("ok", (env.observation_space, env.action_space)))
        except Exception as e:
            conn.send(("error", _describe(e)))
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
                    conn.send(("ok", _unwrapped_attr(env, *data)))
            except Exception as e:
                conn.send(("error", _describe(e)))
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


# ---- Ray actors ----------------------------------------------------------------------------------------

class RayPool(EnvPool):
    """One Ray actor per copy (`vector=ray`): on a local Ray started here, or on a running cluster
    (`ray.address=<head>:6379`), so copies can live on other machines. Observations come back through Ray's
    object store."""

    def __init__(self, factory: EnvFactory, num_envs: int, timeout: float, address: str | None) -> None:
        from rlrun.collect.ray_actor import ray_module, start_actors

        self.ray = ray_module()
        self.num_envs = num_envs
        self.timeout = float(timeout)
        self.actors = start_actors(factory, num_envs, address, cpus=0.0 if factory.evaluation else 1.0)
        first = self._gather(list(range(num_envs)), [a.spaces.remote() for a in self.actors], "start")
        self.observation_space, self.action_space = first[0]
        nodes = self._gather(list(range(num_envs)), [a.node.remote() for a in self.actors], "start")
        logging.getLogger(__name__).info(
            "vector=ray: %s env copies on %d Ray node(s): %s", "evaluation" if factory.evaluation else "training",
            len(set(nodes)), ", ".join(f"copy {i} on {n}" for i, n in enumerate(nodes)))

    def _gather(self, idx: list[int], refs: list[Any], what: str) -> list[Any]:
        ray = self.ray
        answers = []
        for i, ref in zip(idx, refs, strict=True):
            try:
                status, payload = ray.get(ref, timeout=self.timeout)
            except ray.exceptions.GetTimeoutError:
                raise EnvCopyError(f"env copy {i}: no answer to {what} within {self.timeout:g} s (env_timeout)") \
                    from None
            except ray.exceptions.RayActorError as e:
                raise EnvCopyError(f"env copy {i}: Ray actor lost during {what} ({_describe(e)})") from None
            except ray.exceptions.RayError as e:
                raise EnvCopyError(f"env copy {i}: {_describe(e)}") from None
            if status == "error":
                raise EnvCopyError(f"env copy {i}: {payload}")
            answers.append(payload)
        return answers

    def reset(self, seeds, indices=None):
        idx = self._indices(indices)
        answers = self._gather(idx, [self.actors[i].reset.remote(s) for i, s in zip(idx, seeds, strict=True)],
                               "reset")
        obs = _obs_array(self.observation_space, len(idx))
        for row, (o, _) in enumerate(answers):
            obs[row] = o
        return obs, [info for _, info in answers]

    def step(self, actions, indices=None):
        idx = self._indices(indices)
        answers = self._gather(idx, [self.actors[i].step.remote(a) for i, a in zip(idx, actions, strict=True)],
                               "step")
        return _step_result(self.observation_space, answers)

    def call(self, method, args=None, indices=None):
        idx = self._indices(indices)
        args = args if args is not None else [()] * len(idx)
        return self._gather(idx, [self.actors[i].call.remote(method, tuple(a)) for i, a in zip(idx, args, strict=True)],
                            method)

    def attr(self, name, default=None):
        return self._gather([0], [self.actors[0].attr.remote(name, default)], name)[0]

    def close(self) -> None:
        for actor in getattr(self, "actors", []):
            try:
                self.ray.kill(actor)
            except Exception:  # already gone (a lost node): nothing left to stop
                pass
        self.actors = []


def make_pool(factory: EnvFactory, num_envs: int, vector: str, timeout: float = 600.0,
              ray_address: str | None = None) -> EnvPool:
    if num_envs < 1:
        raise ConfigError(f"num_envs must be >= 1, got {num_envs}")
    if vector == "sync":
        return SyncPool(factory, num_envs)
    if vector == "async":
        return ProcessPool(factory, num_envs, timeout)
    if vector == "ray":
        return RayPool(factory, num_envs, timeout, ray_address)
    raise ConfigError(f"vector must be one of {', '.join(VECTOR_MODES)}, got {vector!r}")
