"""Flat float encodings of Gymnasium actions, so one replay buffer stores every action space.

Box            -> the vector itself
Discrete(n)    -> [k]
Tuple(Discrete(K), Box(P)) (P-DQN's hybrid action) -> [k, x_1..x_P]
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces


def is_hybrid(space: spaces.Space) -> bool:
    return (
        isinstance(space, spaces.Tuple)
        and len(space.spaces) == 2
        and isinstance(space.spaces[0], spaces.Discrete)
        and isinstance(space.spaces[1], spaces.Box)
    )


def flat_action_dim(space: spaces.Space) -> int:
    if isinstance(space, spaces.Box):
        return int(np.prod(space.shape))
    if isinstance(space, spaces.Discrete):
        return 1
    if is_hybrid(space):
        return 1 + int(np.prod(space.spaces[1].shape))
    raise TypeError(f"unsupported action space {space}")


def flatten_action(space: spaces.Space, action: Any) -> np.ndarray:
    if isinstance(space, spaces.Box):
        return np.asarray(action, dtype=np.float32).reshape(-1)
    if isinstance(space, spaces.Discrete):
        return np.array([action], dtype=np.float32)
    if is_hybrid(space):
        k, x = action
        return np.concatenate([[float(k)], np.asarray(x, dtype=np.float32).reshape(-1)]).astype(np.float32)
    raise TypeError(f"unsupported action space {space}")


def unflatten_action(space: spaces.Space, flat: np.ndarray) -> Any:
    if isinstance(space, spaces.Box):
        return np.asarray(flat, dtype=space.dtype).reshape(space.shape)
    if isinstance(space, spaces.Discrete):
        return int(round(float(flat[0])))
    if is_hybrid(space):
        box = space.spaces[1]
        return int(round(float(flat[0]))), np.asarray(flat[1:], dtype=box.dtype).reshape(box.shape)
    raise TypeError(f"unsupported action space {space}")


def describe(space: spaces.Space) -> str:
    if isinstance(space, spaces.Box):
        return f"Box{tuple(space.shape)}"
    if isinstance(space, spaces.Discrete):
        return f"Discrete({space.n})"
    if is_hybrid(space):
        return f"Tuple(Discrete({space.spaces[0].n}), Box{tuple(space.spaces[1].shape)})"
    return type(space).__name__


def sample_action(space: spaces.Space, rng: np.random.Generator, mask: np.ndarray | None = None) -> Any:
    """A uniformly random action drawn from `rng` (so the trainer can checkpoint the stream); for a Discrete
    space with an action mask (info["action_mask"]), uniform over the allowed actions."""
    if isinstance(space, spaces.Box):
        return rng.uniform(space.low, space.high).astype(space.dtype)
    if isinstance(space, spaces.Discrete):
        if mask is not None and np.any(mask):
            return int(space.start + rng.choice(np.flatnonzero(mask)))
        return int(space.start + rng.integers(space.n))
    if is_hybrid(space):
        return sample_action(space.spaces[0], rng), sample_action(space.spaces[1], rng)
    raise TypeError(f"unsupported action space {space}")
