"""The one way to open a run directory: claim a new one for a run (`claim_run_dir`), or open an existing one
(`RunDir`: its config, group choices, checkpoints, env and agent)."""

from __future__ import annotations

import contextlib
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rlrun.checkpoint import RunDirLock, load_checkpoint, resolve_checkpoint
from rlrun.compose import compose
from rlrun.errors import CheckpointError, ConfigError
from rlrun.trust import check_targets


def resolve_run_dir(overrides: list[str], config_dir: str | None = None) -> Path:
    """`hydra.run.dir` as Hydra would resolve it for these overrides (timestamp and group choices)."""
    from hydra.core.hydra_config import HydraConfig

    cfg = compose(overrides, config_dir, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return Path(str(cfg.hydra.run.dir))


def claim_run_dir(path: Path, given: bool) -> tuple[Path, bool, RunDirLock]:
    """Make `path` this process's run directory: (the directory, whether it was created, its lock).

    A default directory (`given` False) is created exclusively, with a `_1`, `_2`, ... suffix when another run
    started in the same instant; a directory the user named is locked as it is, so a second concurrent writer
    stops with RunDirBusyError before Hydra writes anything into it."""
    if given:
        created = not path.exists()
    else:
        base, n = path, 1
        while True:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.mkdir()
                break
            except FileExistsError:
                path, n = base.with_name(f"{base.name}_{n}"), n + 1
        created = True
    lock = RunDirLock(path)
    try:
        lock.acquire()
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                path.rmdir()
        raise
    return path, created, lock


def default_timestamp() -> str:
    """Sub-second: runs started in the same second get different directories without a suffix."""
    return datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")


def load_run_config(run_dir: Path) -> DictConfig:
    """The composed config a run saved, refused when it would build anything but rlrun's classes (see
    rlrun.trust): whoever hands you a run directory hands you code."""
    path = run_dir / ".hydra" / "config.yaml"
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {run_dir} does not exist")
    if not path.is_file():
        raise CheckpointError(f"{run_dir} is not an rlrun run directory (no .hydra/config.yaml)")
    try:
        cfg = OmegaConf.load(path)
    except Exception as e:  # a YAML syntax error: yaml's message spans several lines
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path} is not a readable config ({reason})") from None
    if not isinstance(cfg, DictConfig):
        raise CheckpointError(f"{path} is not a config mapping")
    check_targets(cfg, str(path))
    return cfg


def load_agent_state(agent: Any, ckpt: dict[str, Any], path: Path) -> None:
    """A checkpoint of another agent or env (other layer names or shapes) is a CheckpointError line."""
    try:
        agent.load_state_dict(ckpt["agent"])
    except (KeyError, RuntimeError, TypeError, ValueError, AttributeError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"checkpoint {path} does not fit this run's {type(agent).__name__} agent and its "
                              f"env ({reason[:200]})") from None


class RunDir:
    """An existing run directory, opened the one way every command opens it: its saved config (trusted
    targets only, see rlrun.trust), its config-group choices, its checkpoints, and the env and agent it
    trained, rebuilt from that config.

        run = RunDir(path)
        run.override_env(["env.load=80"])
        env = run.build_env(evaluation=True)
        agent = run.build_agent(env, checkpoint="best")   # weights loaded; run.step is the checkpoint's step
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.cfg = load_run_config(self.path)
        self.checkpoint_path: Path | None = None
        self.step = -1

    @property
    def name(self) -> str:
        """`<env>-<agent>/<timestamp>`: the run as outputs/ names it."""
        return f"{self.path.parent.name}/{self.path.name}"

    @property
    def choices(self) -> dict[str, str]:
        """The config-group options the run was composed from (env, agent, replay, reward), as Hydra saved
        them; empty for a directory written without Hydra."""
        hydra_yaml = self.path / ".hydra" / "hydra.yaml"
        if not hydra_yaml.is_file():
            return {}
        choices = OmegaConf.select(OmegaConf.load(hydra_yaml), "hydra.runtime.choices", default=None)
        return {str(k): str(v) for k, v in (choices or {}).items()}

    @property
    def env_target(self) -> str:
        return str(self.cfg.env.get("_target_", ""))

    def require_env(self, class_name: str, command: str, option: str) -> None:
        """Commands made for one simulator refuse runs of another, naming both."""
        if self.env_target.rsplit(".", 1)[-1] != class_name:
            raise ConfigError(f"rlrun {command} needs an env={option} run; {self.path} trained on "
                              f"{self.env_target or 'an unknown env'}")

    def override_env(self, overrides: list[str]) -> None:
        """`env.<key>=value` overrides of keys the run's env config already has."""
        for override in overrides:
            key = override.partition("=")[0]
            if key.split(".", 1)[1].split(".")[0] not in self.cfg.env:
                raise ConfigError(f"{key} is not a key of this run's env config; allowed: "
                                  f"{', '.join(k for k in self.cfg.env if not k.startswith('_'))}")
            self.cfg.merge_with_dotlist([override])

    def checkpoint(self, which: str = "best") -> tuple[Path, dict[str, Any]]:
        """(path, contents) of `best`, `last` or a checkpoint path."""
        path = resolve_checkpoint(self.path, which)
        return path, load_checkpoint(path)

    def build_env(self, evaluation: bool = False, log_dir: Path | None = None) -> Any:
        from rlrun.build import build_env

        return build_env(self.cfg, log_dir=log_dir, evaluation=evaluation)

    def build_agent(self, env: Any, checkpoint: str | None = "best") -> Any:
        """The run's agent for `env`, with the weights of `checkpoint` (None: freshly initialised)."""
        from rlrun.build import build_agent

        agent = build_agent(self.cfg, env)
        if checkpoint is not None:
            self.checkpoint_path, ckpt = self.checkpoint(checkpoint)
            load_agent_state(agent, ckpt, self.checkpoint_path)
            self.step = int(ckpt.get("trainer", {}).get("step", -1))
        return agent
