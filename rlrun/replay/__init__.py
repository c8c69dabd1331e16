"""Replay buffers: preallocated arrays, uniform or prioritized sampling, optional n-step returns."""

from rlrun.replay.buffer import Batch, ReplayBuffer

__all__ = ["Batch", "ReplayBuffer"]
