"""A run directory's config is code: every `_target_` in it is imported and called. Loading one (`rlrun eval`,
`train resume=`, `export`, `collect run=`, ...) therefore builds only rlrun's own classes unless the user says
they trust the directory: `trust_config=true` (anything) or `trust_config=mypkg.,other.mod.` (those prefixes).

The check runs on the strings before anything is imported, then on the imported object: `rlrun.x.os.system`
starts with `rlrun.` but names os.system, so the object must also be defined in an rlrun module.
"""

from __future__ import annotations

import importlib
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from rlrun.errors import ConfigError

OWN_PREFIX = "rlrun."
_trusted: tuple[str, ...] = ()  # prefixes the user trusts; ("",) trusts everything


def set_trust(value: str | None) -> None:
    """`trust_config=` from the command line: true/false or a comma-separated list of module prefixes."""
    global _trusted
    text = (value or "").strip()
    if text.lower() in ("", "false", "no", "0", "null"):
        _trusted = ()
    elif text.lower() in ("true", "yes", "1"):
        _trusted = ("",)
    else:
        _trusted = tuple(p.strip() for p in text.split(",") if p.strip())


def targets(node: Any, path: str = "") -> list[tuple[str, str]]:
    """(config key, target) of every `_target_` in a config, nested dicts and lists included. Interpolations
    stay unresolved: `_target_: ${x}` is checked as the text it is, and refused."""
    if isinstance(node, DictConfig | ListConfig):
        node = OmegaConf.to_container(node, resolve=False)
    found: list[tuple[str, str]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            found += [(child, str(value))] if key == "_target_" else targets(value, child)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            found += targets(item, f"{path}[{i}]")
    return found


def _defined_in_rlrun(target: str) -> bool:
    """Import only rlrun modules: the longest importable `rlrun...` prefix, then attributes."""
    parts = target.split(".")
    if any(not p or p.startswith("_") for p in parts):
        return False
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return False
        return str(getattr(obj, "__module__", "") or "").startswith(OWN_PREFIX)
    return False


def check_targets(cfg: Any, source: str) -> None:
    """Refuse a loaded config whose `_target_`s leave rlrun, unless the user trusts them (one line, exit 2)."""
    for key, target in targets(cfg):
        if any(target.startswith(p) for p in _trusted):
            continue
        if target.startswith(OWN_PREFIX) and _defined_in_rlrun(target):
            continue
        raise ConfigError(f"{source}: {key}={target!r} is not an rlrun class; a run directory's config is code, "
                          f"so only rlrun.* targets are built from it. If you trust it, pass trust_config=true "
                          f"(or trust_config=<module prefix>,...)")
