"""`rlrun sweep hydra/launcher=ray`: each job of the sweep is one Ray task on a running Ray cluster (or on a local
Ray started for the sweep).

The launcher (Hydra's plugin class in hydra_plugins/rlrun_ray_launcher) submits every job at once, with the
options of `hydra.launcher.ray.remote`, and waits for all of them. A job whose worker process or node dies is
recorded as failed in its run directory (the sweep summary lists it, `rlrun sweep` exits 1) while the other
jobs go on; Ray does not run it again (max_retries: 0 in the preset), since a second attempt would train over
the first one's run directory. Jobs run in the directory `rlrun sweep` was started in, as SLURM jobs do, so
relative paths mean the same on every node of a cluster with a shared filesystem. Each job's train.log names
the Ray node and the process that ran it.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def describe(e: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__


def connect(init: dict[str, Any]) -> None:
    """ray.init with the preset's arguments, unless this process is connected already; one line when it fails."""
    import ray

    from rlrun.errors import ConfigError

    if ray.is_initialized():
        return
    address = init.get("address")
    try:
        ray.init(**init)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as e:
        where = f"hydra.launcher.ray.init.address={address}" if address else "a local Ray"
        raise ConfigError(f"cannot start or reach {where}: {describe(e)}") from None


def _logged(task_function: Any, cfg: Any) -> Any:
    import ray

    log.info("running on Ray node %s (host %s), pid %d", ray.get_runtime_context().get_node_id(),
             socket.gethostname(), os.getpid())
    return task_function(cfg)


def _run_job(hydra_context: Any, sweep_config: Any, task_function: Any, singleton_state: Any, cwd: str) -> Any:
    """The Ray task: one Hydra job, in the submission directory where this node has it."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.singleton import Singleton
    from hydra.core.utils import run_job, setup_globals

    if os.path.isdir(cwd):
        os.chdir(cwd)
    setup_globals()
    Singleton.set_state(singleton_state)
    HydraConfig.instance().set_config(sweep_config)
    return run_job(hydra_context=hydra_context, task_function=functools.partial(_logged, task_function),
                   config=sweep_config, job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")


def _lost(idx: int, overrides: Sequence[str], sweep_config: Any, error: str) -> Any:
    """The record of a job Ray lost (its worker process or node died): eval.json says failed, with the error,
    and .hydra/overrides.yaml is there even when the job died before Hydra wrote it, so the summary lists it."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.utils import JobReturn, JobStatus
    from omegaconf import OmegaConf

    from rlrun.sweep import write_job_status

    HydraConfig.instance().set_config(sweep_config)  # the subdir interpolates ${hydra:job.num}
    run_dir = Path(str(sweep_config.hydra.sweep.dir)) / str(sweep_config.hydra.sweep.subdir)
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    if not (run_dir / ".hydra" / "overrides.yaml").is_file():
        OmegaConf.save(OmegaConf.create(list(overrides)), run_dir / ".hydra" / "overrides.yaml")
    choices = sweep_config.hydra.runtime.choices
    write_job_status(run_dir, "failed", {"env": choices.get("env"), "agent": choices.get("agent")}, error)
    log.error("#%d failed: %s", idx, error)
    # rlrun's task function records a failed job and returns None, and so does this: the sweep goes on
    return JobReturn(overrides=list(overrides), hydra_cfg=sweep_config, working_dir=str(run_dir),
                     task_name=str(sweep_config.hydra.job.name), status=JobStatus.COMPLETED, _return_value=None)


def launch(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[Any]:
    import ray
    from hydra.core.singleton import Singleton
    from hydra.core.utils import configure_log, filter_overrides, setup_globals
    from omegaconf import OmegaConf, open_dict

    setup_globals()
    config = launcher.config
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    init = OmegaConf.to_container(launcher.ray_cfg.init, resolve=True) or {}
    remote = OmegaConf.to_container(launcher.ray_cfg.remote, resolve=True) or {}
    connect(init)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    log.info("Ray launcher: %d jobs on %d Ray node(s) with %g CPUs, sweep dir %s", len(job_overrides), len(nodes),
             ray.cluster_resources().get("CPU", 0), sweep_dir)
    job = ray.remote(**remote)(_run_job) if remote else ray.remote(_run_job)
    submitted = []
    for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
        log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
        sweep_config = launcher.hydra_context.config_loader.load_sweep_config(config, list(overrides))
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = f"ray_{idx}"
            sweep_config.hydra.job.num = idx
            sweep_config.hydra.sweep.dir = str(sweep_dir)  # absolute: the same directory on every node
        ref = job.remote(launcher.hydra_context, sweep_config, launcher.task_function, Singleton.get_state(),
                         os.getcwd())
        submitted.append((idx, overrides, sweep_config, ref))
    results = []
    for idx, overrides, sweep_config, ref in submitted:
        try:
            results.append(ray.get(ref))
        except ray.exceptions.RayError as e:  # the worker process or its node died; the others go on
            results.append(_lost(idx, overrides, sweep_config, f"Ray lost the job: {describe(e)}"))
    return results
