"""The one way rlrun builds objects from config: Hydra's `instantiate` on a `_target_` node, with a config
mistake (a wrong argument, a value the constructor rejects) reported as one ConfigError line."""

from __future__ import annotations

import importlib
import inspect
import typing
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from rlrun.errors import ConfigError, RlrunError


def instantiate_node(node: DictConfig, group: str, **kwargs: Any) -> Any:
    try:
        return instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, RlrunError):
            raise cause from None
        if isinstance(cause, (TypeError, ValueError)):
            raise ConfigError(f"{group}: {cause}") from None
        raise


def locate(path: str) -> Any:
    module_name, _, attr = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"_target_ {path!r} cannot be imported: {e}") from None


def parameters(target: Any) -> tuple[dict[str, inspect.Parameter], bool]:
    """Named parameters of a class or function, following **kwargs up a class hierarchy."""
    params: dict[str, inspect.Parameter] = {}
    funcs = [c.__init__ for c in target.__mro__ if "__init__" in vars(c)] if inspect.isclass(target) else [target]
    for func in funcs:
        sig = inspect.signature(func)
        hints = typing.get_type_hints(func) if func is not object.__init__ else {}
        open_kwargs = False
        for name, p in sig.parameters.items():
            if name == "self" or p.kind is p.VAR_POSITIONAL:
                continue
            if p.kind is p.VAR_KEYWORD:
                open_kwargs = True
                continue
            params.setdefault(name, p.replace(annotation=hints.get(name, p.annotation)))
        if not open_kwargs:
            return params, False
    return params, True
