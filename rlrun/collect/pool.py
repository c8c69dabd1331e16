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
from collections.abc import Sequence
from dataclasses import dataclass
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


def describe_error(e: BaseException) -> str:
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


def obs_array(obs_space: spaces.Space, rows: int) -> np.ndarray:
    return np.zeros((rows, *obs_space.shape), dtype=obs_space.dtype)


def step_result(obs_space: spaces.Space, answers: list[tuple]) -> StepResult:
    """Stack the copies' (obs, reward, terminated, truncated, info) answers."""
    k = len(answers)
    out = StepResult(obs_array(obs_space, k), np.zeros(k), np.zeros(k, bool), np.zeros(k, bool), [])
    for row, (o, r, term, trunc, info) in enumerate(answers):
        out.obs[row], out.rewards[row], out.terminated[row], out.truncated[row] = o, r, term, trunc
        out.infos.append(info)
    return out


def unwrapped_attr(env: Any, name: str, default: Any) -> Any:
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
            raise EnvCopyError(f"env copy {i}: {describe_error(e)}") from e

    @classmethod
    def of(cls, env: Any) -> SyncPool:
        """A pool of one env that already exists (evaluation of a single env)."""
        return cls(None, 1, [env])

    def reset(self, seeds, indices=None):
        idx = self._indices(indices)
        obs, infos = obs_array(self.observation_space, len(idx)), []
        for row, (i, seed) in enumerate(zip(idx, seeds, strict=True)):
            obs[row], info = self._guard(i, self.envs[i].reset, seed=seed)
            infos.append(info)
        return obs, infos

    def step(self, actions, indices=None):
        idx = self._indices(indices)
        return step_result(self.observation_space, [self._guard(i, self.envs[i].step, action)
                                                     for i, action in zip(idx, actions, strict=True)])

    def call(self, method, args=None, indices=None):
        idx = self._indices(indices)
        args = args if args is not None else [()] * len(idx)
        return [self._guard(i, getattr(self.envs[i].unwrapped, method), *a) for i, a in zip(idx, args, strict=True)]

    def attr(self, name, default=None):
        return unwrapped_attr(self.envs[0], name, default)

    def close(self) -> None:
        for env in self.envs:
            env.close()
        self.envs = []


def make_pool(factory: EnvFactory, num_envs: int, vector: str, timeout: float = 600.0,
              ray_address: str | None = None) -> EnvPool:
    from rlrun.collect.process_pool import ProcessPool  # the backends subclass EnvPool: imported when chosen
    from rlrun.collect.ray_pool import RayPool

    if num_envs < 1:
        raise ConfigError(f"num_envs must be >= 1, got {num_envs}")
    if vector == "sync":
        return SyncPool(factory, num_envs)
    if vector == "async":
        return ProcessPool(factory, num_envs, timeout)
    if vector == "ray":
        return RayPool(factory, num_envs, timeout, ray_address)
    raise ConfigError(f"vector must be one of {', '.join(VECTOR_MODES)}, got {vector!r}")
