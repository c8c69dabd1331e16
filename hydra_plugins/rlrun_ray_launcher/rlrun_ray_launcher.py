"""The Hydra plugin class behind rlrun's `hydra/launcher=ray` preset. Hydra instantiates launchers only from the
`hydra_plugins` package, so the class lives here and hands the work to `rlrun.sweep_ray`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher


class RlrunRayLauncher(Launcher):
    def __init__(self, ray: Any) -> None:
        self.ray_cfg = ray
        self.hydra_context: Any = None
        self.task_function: Any = None
        self.config: Any = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from rlrun.sweep_ray import launch

        return launch(self, job_overrides, initial_job_idx)
