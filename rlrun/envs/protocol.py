"""`RlrunEnv`: every optional hook an rlrun environment may offer, documented in this one place.

An env is any `gymnasium.Env` (the trainer needs nothing else). These hooks, looked up on `env.unwrapped`
(or through an env pool's `attr`/`call`), let it do more; rlrun checks for each before using it.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class RlrunEnv(Protocol):
    """The Gymnasium API plus rlrun's optional hooks.

    Besides the hooks below, every rlrun env:
    - puts its domain metrics in `info` as plain floats; the trainer averages every numeric `info` key over an
      episode and logs it as `env/<key>`, and evaluation reports them;
    - takes its reward weights as the constructor argument `reward` (the `reward` config group);
    - gives the same trajectory for the same seed.

    A constructor argument `log_dir: str | None`, when declared, is filled in by rlrun: where the env writes
    its own event logs (the consensus env's shadow-mode and circuit-breaker files); copy i > 0 of a pool gets
    `<log_dir>/copy<i>`.
    """

    eval_kwargs: ClassVar[dict[str, dict[str, Any]]]
    """Constructor arguments per evaluation split, `{"val": {...}, "test": {...}}` (the inverter's
    `{"split": "val"}` / `{"split": "test"}`): in-training evaluation and best.pt selection build their copies
    with "val", the final report and `rlrun eval` with "test" (`rlrun.collect.make_env(..., evaluation=...)`),
    so neither sees training data and model selection never sees the test data. Envs without such data keep
    the splits apart by seed (`val_seed`, `eval_seed`)."""

    tensorboard_layout: ClassVar[dict[str, Any]]
    """A TensorBoard custom-scalars layout `{category: {chart: ["Multiline", [tags]]}}` grouping the env's
    metrics; its `env/<key>` tags are also the metrics `rlrun eval` prints first."""

    def default_action(self) -> np.ndarray:
        """The env's static configuration as an action: the `static` baseline and `rlrun simulate` act with it."""
        ...

    def get_state(self) -> dict[str, Any]:
        """A plain-Python/ndarray snapshot of the simulator: a checkpoint taken mid-episode resumes exactly.
        Envs without get_state/set_state restart the interrupted episode from a deterministic reset."""
        ...

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what `get_state` returned."""
        ...

