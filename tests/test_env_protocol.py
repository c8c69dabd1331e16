"""The shipped envs offer rlrun's optional hooks in the shape rlrun.envs.protocol.RlrunEnv documents."""

import importlib
import inspect

import pytest

from rlrun.envs import _ENVS
from rlrun.envs.protocol import RlrunEnv

HOOK_METHODS = [name for name, v in vars(RlrunEnv).items() if inspect.isfunction(v) and not name.startswith("_")]


@pytest.mark.parametrize("entry", sorted(_ENVS.values()))
def test_hooks_have_the_documented_shape(entry):
    module, name = entry.split(":")
    cls = getattr(importlib.import_module(module), name)
    for attr, kind in (("eval_kwargs", dict), ("tensorboard_layout", dict)):
        if hasattr(cls, attr):
            assert isinstance(getattr(cls, attr), kind), f"{name}.{attr}"
    if hasattr(cls, "eval_kwargs"):
        assert set(cls.eval_kwargs) <= {"val", "test"}, f"{name}.eval_kwargs: splits val and test only"
    for method in HOOK_METHODS:
        if hasattr(cls, method):
            want = list(inspect.signature(getattr(RlrunEnv, method)).parameters)
            got = list(inspect.signature(getattr(cls, method)).parameters)
            assert len(got) == len(want), f"{name}.{method}{tuple(got)} vs RlrunEnv.{method}{tuple(want)}"
    assert ("get_state" in dir(cls)) == ("set_state" in dir(cls)), f"{name}: get_state and set_state go together"


def test_the_protocol_names_every_hook_rlrun_looks_up():
    assert {"default_action", "get_state", "set_state"} <= set(HOOK_METHODS)
