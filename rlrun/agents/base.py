"""The Agent contract the trainer relies on.

An agent knows spaces, never environments. It is built by Hydra's `instantiate` from the `agent` config group
with `observation_space`, `action_space`, `device` and `seed` passed in by the trainer, and it must reject
spaces it cannot drive in `check_spaces` (called from `__init__`) so a bad pairing fails before training.

Lifecycle driven by `rlrun.trainer`:
    act_batch(obs, explore) -> one action per env copy for a batch of observations [N, obs_dim], in one forward
                              pass (agents with `batched_acting`); actions are env-native (numpy / int / (k, x))
    act(obs, explore)      -> the action for one observation (evaluation, deployment): act_batch on a batch of 1
    update(batch)          -> {"loss/...": float, ...}; may include "td_error": np.ndarray[B] for prioritized replay
    on_step(step)          -> schedules (noise decay, epsilon, ...) with the env steps summed over all copies
    on_episode_end(i)      -> per-episode resets of env copy i (its OU noise state, ...)
    state_dict() / load_state_dict() -> everything needed to resume exactly (nets, targets, optimisers, RNG)

Class attributes:
    uses_replay   True: the trainer stores transitions in the replay buffer and samples `batch_size` batches.
                  False: the trainer calls update() with each single transition as a batch of 1 (online).
    offline       True: the agent learns from a dataset (`dataset=<path>`), the env is used only for evaluation.
    on_policy     True: the trainer fills a rollout buffer (rlrun.replay.rollout) of num_envs x n_steps through
                  `policy_step` and calls update(rollout) when it is full (PPO).
    batched_acting  True: act_batch handles N > 1 copies (per-copy exploration state); False: the agent keeps
                  acting state for one env stream and refuses num_envs > 1.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from rlrun.errors import IncompatibleSpaceError
from rlrun.spaces import describe


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class Agent(abc.ABC):
    """Base class: stores spaces, device, RNG and the generic hyperparameters every agent has."""

    uses_replay: bool = True
    offline: bool = False
    on_policy: bool = False
    batched_acting: bool = False
    #: names of space kinds this agent accepts: "box", "discrete", "hybrid"
    supported_action_spaces: tuple[str, ...] = ("box",)

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        device: str = "cpu",
        seed: int = 0,
        gamma: float = 0.99,
        batch_size: int = 256,
    ) -> None:
        self.check_spaces(observation_space, action_space)
        self.observation_space = observation_space
        self.action_space = action_space
        self.device = resolve_device(device)
        self.gamma = float(gamma)
        self.batch_size = int(batch_size)
        self.rng = np.random.default_rng(seed)

    # ---- space checks -------------------------------------------------------------------------------
    @classmethod
    def check_spaces(cls, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        from rlrun.spaces import is_hybrid

        kind = (
            "box"
            if isinstance(action_space, spaces.Box)
            else "discrete"
            if isinstance(action_space, spaces.Discrete)
            else "hybrid"
            if is_hybrid(action_space)
            else "other"
        )
        if kind not in cls.supported_action_spaces:
            raise IncompatibleSpaceError(
                f"agent {cls.__name__} cannot drive action space {describe(action_space)}; "
                f"it supports: {', '.join(cls.supported_action_spaces)}"
            )
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
            raise IncompatibleSpaceError(
                f"agent {cls.__name__} needs a flat Box observation space, got {describe(observation_space)}"
            )

    # ---- the contract -------------------------------------------------------------------------------
    def act_batch(self, obs: np.ndarray, explore: bool) -> list[Any]:
        """One action per row of `obs` [N, obs_dim]. Agents with `batched_acting` override this (and get `act`
        for free); the default serves agents that implement only `act` for a single env stream."""
        return [self.act(o, explore) for o in np.asarray(obs)]

    def act(self, obs: np.ndarray, explore: bool) -> Any:
        """The action for a single observation. Override this or act_batch (one of the two)."""
        if type(self).act_batch is Agent.act_batch:
            raise TypeError(f"{type(self).__name__} implements neither act nor act_batch")
        return self.act_batch(np.asarray(obs)[None], explore)[0]

    @abc.abstractmethod
    def update(self, batch: Any) -> dict[str, Any]: ...

    def on_step(self, step: int) -> None:  # noqa: B027 (optional hook)
        """Called once per environment step with the global step count (for schedules)."""

    def on_episode_end(self, env_index: int = 0) -> None:  # noqa: B027 (optional hook)
        """Called when a training episode of env copy `env_index` ends (reset that copy's exploration state,
        decay per-episode schedules)."""

    def reset_episode(self) -> None:  # noqa: B027 (optional hook)
        """Forget per-episode acting state (a controller's integrator, ...) without touching learning
        schedules; called before every evaluation episode."""

    # ---- persistence --------------------------------------------------------------------------------
    def modules(self) -> dict[str, Any]:
        """Named torch modules and optimisers to persist. Override in subclasses."""
        return {}

    def extra_state(self) -> dict[str, Any]:
        """Non-torch state (noise processes, counters). Plain Python / tensors only (weights_only loads)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        del state

    def state_dict(self) -> dict[str, Any]:
        return {
            "modules": {name: m.state_dict() for name, m in self.modules().items()},
            "rng": self.rng.bit_generator.state,
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mods = self.modules()
        missing = set(mods) - set(state["modules"])
        if missing:
            raise KeyError(f"checkpoint lacks agent modules {sorted(missing)}")
        for name, m in mods.items():
            m.load_state_dict(state["modules"][name])
        self.rng.bit_generator.state = state["rng"]
        self.load_extra_state(state.get("extra", {}))
