"""`vector=ray`: one Ray actor per env copy, on a local Ray or the cluster at `ray.address`; a lost actor is
one EnvCopyError line that names the copy. See rlrun/collect/pool.py for the interface."""

from __future__ import annotations

import logging
from typing import Any

from rlrun.collect.factory import EnvFactory
from rlrun.collect.pool import EnvPool, describe_error, obs_array, step_result
from rlrun.errors import EnvCopyError


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
                raise EnvCopyError(f"env copy {i}: Ray actor lost during {what} ({describe_error(e)})") from None
            except ray.exceptions.RayError as e:
                raise EnvCopyError(f"env copy {i}: {describe_error(e)}") from None
            if status == "error":
                raise EnvCopyError(f"env copy {i}: {payload}")
            answers.append(payload)
        return answers

    def reset(self, seeds, indices=None):
        idx = self._indices(indices)
        answers = self._gather(idx, [self.actors[i].reset.remote(s) for i, s in zip(idx, seeds, strict=True)],
                               "reset")
        obs = obs_array(self.observation_space, len(idx))
        for row, (o, _) in enumerate(answers):
            obs[row] = o
        return obs, [info for _, info in answers]

    def step(self, actions, indices=None):
        idx = self._indices(indices)
        answers = self._gather(idx, [self.actors[i].step.remote(a) for i, a in zip(idx, actions, strict=True)],
                               "step")
        return step_result(self.observation_space, answers)

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


