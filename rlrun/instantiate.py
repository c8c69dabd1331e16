"""The one way rlrun builds objects from config: Hydra's `instantiate` on a `_target_` node, with a config
mistake (a wrong argument, a value the constructor rejects) reported as one ConfigError line."""

from __future__ import annotations

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
