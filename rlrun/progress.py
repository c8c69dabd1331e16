"""What a training run counts and how it is stopped: the counters every checkpoint persists, the arithmetic
of "is a round / evaluation / checkpoint due" when the step counter advances by num_envs at a time, and the
signals (SIGINT, SIGTERM, SIGUSR2) that stop a run at the next step boundary."""

from __future__ import annotations

import math
import signal
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Progress:
    """Counters persisted in every checkpoint; `episode_returns`/`episode_lengths` are per env copy."""

    step: int = 0
    episode: int = 0
    episode_returns: list[float] = field(default_factory=lambda: [0.0])
    episode_lengths: list[int] = field(default_factory=lambda: [0])
    best_eval: float = -math.inf
    best_step: int = -1
    recent_returns: list[float] = field(default_factory=list)


def crossed(before: int, now: int, every: int, start: int = 0) -> int:
    """How many multiples of `every` that are >= `start` lie in (before, now]: the rounds, evaluations or
    checkpoints due when the step counter jumps from `before` to `now` (by num_envs at a time)."""
    if not every or now < start:
        return 0
    return now // every - max(before, start - 1) // every


class Interrupted(BaseException):
    """A signal that arrived during the final or baseline evaluation, which have no step boundary to stop at.
    A BaseException so that no `except Exception` in an env or agent swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class StopRequested:
    """SIGINT/SIGTERM (and SIGUSR2, the time-limit warning SLURM sends through submitit's `--signal`) set a
    flag; the loop checkpoints and exits at the next step boundary, so a preempted or timed-out cluster job
    resumes with `rlrun train resume=<job dir>`. After `raise_on_signal()` a signal raises Interrupted
    instead (the final evaluation has no step boundary to stop at)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        self._raise = False

    def raise_on_signal(self, enabled: bool = True) -> None:
        self._raise = enabled

    def __enter__(self) -> StopRequested:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. some Hydra launchers): no handler
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:  # second Ctrl-C: give up waiting
            raise KeyboardInterrupt
        self.signum = signum
        if self._raise:
            raise Interrupted(signum)

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def __bool__(self) -> bool:
        return self.signum is not None
