"""One source of defaults: a config-group YAML that names a constructor argument with a default must give
that same default, unless the option exists to differ (a preset: listed below with why), so `rlrun train`
and `EnvClass()` in Python mean the same thing. Interpolations (`${...}`) wire config to config and are not
defaults; arguments whose default is None are computed by the constructor and may be spelled out."""

import dataclasses
import inspect
import math

import pytest
from omegaconf import OmegaConf

from rlrun.compose import CONF_DIR
from rlrun.instantiate import locate, parameters

# (group/option, key): why this option's value differs from the constructor's
PRESETS = {
    ("replay/nstep", "n_step"): "the nstep option is the uniform buffer with 3-step returns",
}


def group_files():
    for group in ("env", "agent", "replay", "reward"):
        for path in sorted((CONF_DIR / group).glob("*.yaml")):
            node = OmegaConf.load(path)
            if "_target_" in node:
                yield f"{group}/{path.stem}", node


def same(default, value) -> bool:
    default = list(default) if isinstance(default, tuple) else default
    if isinstance(default, float | int) and isinstance(value, float | int) and not isinstance(value, bool):
        return math.isclose(float(default), float(value), rel_tol=1e-12)
    return default == value


@pytest.mark.parametrize("option,node", list(group_files()), ids=lambda x: x if isinstance(x, str) else "")
def test_yaml_defaults_match_the_constructor(option, node):
    target = locate(node._target_)
    params, _ = parameters(target)
    factories = {f.name: f.default_factory for f in dataclasses.fields(target)
                 if f.default_factory is not dataclasses.MISSING} if dataclasses.is_dataclass(target) else {}
    raw = OmegaConf.to_container(node, resolve=False)
    disagree = []
    for key, value in raw.items():
        if key.startswith("_") or key not in params or (option, key) in PRESETS:
            continue
        default = factories[key]() if key in factories else params[key].default
        if default is inspect.Parameter.empty or default is None:
            continue
        if isinstance(value, str) and value.startswith("${"):
            continue
        if not same(default, value):
            disagree.append(f"{key}: YAML {value!r}, constructor {default!r}")
    assert not disagree, f"{option}: " + "; ".join(disagree)


def test_presets_still_differ():
    """An entry in PRESETS that no longer differs is stale."""
    nodes = dict(group_files())
    for (option, key) in PRESETS:
        params, _ = parameters(locate(nodes[option]._target_))
        assert not same(params[key].default, nodes[option][key]), (option, key)
