"""The one way to compose rlrun's config: Hydra on the packaged config tree (plus `--config-dir`), and its
errors turned into one line that names the key or option and what is allowed."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from omegaconf import DictConfig

import rlrun.conf
from rlrun.errors import ConfigError, RlrunError

CONF_DIR = Path(rlrun.conf.__file__).parent  # the top-level conf/ (rlrun.conf once installed)


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


def compose_config(overrides: list[str], config_dir: str | None = None) -> DictConfig:
    """`compose`, with any failure (an unknown group option or key, a bad value) as one ConfigError line."""
    try:
        return compose(overrides, config_dir)
    except RlrunError:
        raise
    except Exception as e:  # hydra's and omegaconf's exceptions do not share one base
        raise ConfigError(one_line(e, overrides, config_dir).splitlines()[0]) from None


def one_line(e: Exception, overrides: list[str], config_dir: str | None = None) -> str:
    msg = str(e)
    cause = e.__cause__
    if cause is not None:
        msg += "\n" + str(cause)
    if "Could not find '" in msg and "Available options in '" in msg:
        missing = msg.split("Could not find '")[1].split("'")[0]
        group, _, option = missing.partition("/")
        opts = [ln.strip() for ln in msg.split("Available options in")[1].splitlines()[1:] if ln.strip()]
        opts = [o for o in opts if not o.startswith("Config search path")]
        opts = opts[: opts.index("") if "" in opts else len(opts)]
        return f"{group}={option} is not a known option; available: {', '.join(o for o in opts if ' ' not in o)}"
    if "Could not override '" in msg:
        key = msg.split("Could not override '")[1].split("'")[0]
        parent = key.rpartition(".")[0]
        allowed = keys_of(parent, [o for o in overrides if not o.startswith(key + "=")], config_dir)
        hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        from rlrun.config import renamed_hint

        renamed = renamed_hint(key)
        if renamed:
            return f"{key} is not a config key{renamed}"
        return f"{key} is not a config key{hint} (to add a new key use +{key}=...)"
    full_key = ""
    for line in msg.splitlines():
        if line.strip().startswith("full_key:"):
            full_key = line.split("full_key:")[1].strip()
    lines = [ln.strip() for ln in msg.strip().splitlines() if ln.strip() and not ln.strip().startswith(
        ("full_key", "object_type", "reference_type"))]
    if not lines:
        return type(e).__name__
    text = lines[0] if len(lines) == 1 else f"{lines[0]}: {lines[-1]}"
    return f"{full_key}: {text}" if full_key and full_key not in text else text


def keys_of(node_key: str, overrides: list[str], config_dir: str | None = None) -> list[str]:
    """The keys of the config node at `node_key` (e.g. `env` or `env.network`), or [] when there is none."""
    from omegaconf import OmegaConf

    try:
        cfg = compose(overrides, config_dir)
    except Exception:
        return []
    node = OmegaConf.select(cfg, node_key) if node_key else cfg
    return sorted(k for k in node if not str(k).startswith("_")) if hasattr(node, "keys") else []
