"""The one way to open a run directory: claim a new one for a run, or load an existing one's config."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rlrun.checkpoint import RunDirLock
from rlrun.errors import CheckpointError, ConfigError
from rlrun.trust import check_targets

CONF_DIR = Path(__file__).parent / "conf"


@contextlib.contextmanager
def hydra_search_path(config_dir: str | None = None) -> Iterator[None]:
    """Hydra initialised on rlrun's config tree, with `--config-dir DIR` in front as Hydra's own CLI puts it,
    so that pre-validation sees the configs the real run will see."""
    from hydra import version
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    import rlrun.config  # noqa: F401  (registers the run-settings schema in Hydra's ConfigStore)

    backup = get_gh_backup()
    version.setbase("1.3")
    search_path = create_config_search_path(str(CONF_DIR))
    if config_dir is not None:
        absolute = os.path.abspath(config_dir)
        if not os.path.isdir(absolute):
            raise ConfigError(f"--config-dir {config_dir}: no such directory")
        search_path.prepend(provider="command-line", path=f"file://{absolute}")
    Hydra.create_main_hydra2(task_name="train", config_search_path=search_path)
    try:
        yield
    finally:
        restore_gh_from_backup(backup)


def compose(overrides: list[str], config_dir: str | None = None, return_hydra_config: bool = False) -> DictConfig:
    from hydra import compose as hydra_compose

    with hydra_search_path(config_dir):
        return hydra_compose(config_name="config", overrides=overrides, return_hydra_config=return_hydra_config)


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
