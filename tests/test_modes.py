"""Agent modes: parsing, per-mode bounds, what is recommended vs applied, revert, the JSONL log."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rlrun.errors import ConfigError
from rlrun.governance.modes import (
    AgentMode,
    JsonlLog,
    ParameterGovernor,
    TunedParameter,
    applies_changes,
    max_change,
    parse_mode,
    runs_inference,
)


def governor(mode: str) -> ParameterGovernor:
    params = [
        TunedParameter("block_time_ms", 5000, 250, 20000, integer=True),
        TunedParameter("base_gas_price", 100, 10, 1000),
        TunedParameter("validator_set_size", 100, 50, 200, applied=False, integer=True),
    ]
    return ParameterGovernor(params, mode, 0.10, 0.25)


def test_parse_mode_names_and_seed_ids():
    assert parse_mode("shadow") is AgentMode.SHADOW and parse_mode(0) is AgentMode.SHADOW
    assert parse_mode("Conservative") is AgentMode.CONSERVATIVE and parse_mode("1") is AgentMode.CONSERVATIVE
    assert parse_mode(2) is AgentMode.AUTONOMOUS and parse_mode("paused") is AgentMode.PAUSED
    assert [int(m) for m in AgentMode] == [0, 1, 2, 3]
    with pytest.raises(ConfigError, match="shadow, conservative, autonomous, paused"):
        parse_mode("aggressive")
    with pytest.raises(ConfigError):
        parse_mode(4)


def test_mode_bounds_and_capabilities():
    assert [max_change(m) for m in AgentMode] == [0.0, 0.10, 0.25, 0.0]
    assert [applies_changes(m) for m in AgentMode] == [False, True, True, False]
    assert [runs_inference(m) for m in AgentMode] == [True, True, True, False]


def test_conservative_applies_within_ten_percent():
    g = governor("conservative")
    d = g.decide(np.array([1.0, -1.0, 1.0]))
    assert d.applied == {"block_time_ms": 5500.0, "base_gas_price": 90.0, "validator_set_size": 100.0}
    assert d.recommended["validator_set_size"] == 110.0  # recommended, never applied
    d = g.decide(np.array([0.5, 3.0, 0.0]))  # relative to the current value; actions clipped to [-1, 1]
    assert d.applied["block_time_ms"] == 5775.0 and d.applied["base_gas_price"] == pytest.approx(99.0)
    assert d.action.tolist() == [0.5, 1.0, 0.0]


def test_autonomous_applies_within_twenty_five_percent_and_clamps():
    g = governor("autonomous")
    assert g.decide([-1.0, 1.0, 0.0]).applied["block_time_ms"] == 3750.0
    for _ in range(30):
        d = g.decide([-1.0, 1.0, 1.0])
    assert d.applied["block_time_ms"] == 250.0 and d.applied["base_gas_price"] == 1000.0
    assert d.recommended["validator_set_size"] == 125.0  # set size never moves, so neither does its base
    g.revert()
    assert g.values == g.defaults()


def test_shadow_recommends_at_the_conservative_bound_and_changes_nothing():
    g = governor("shadow")
    d = g.decide([1.0, 1.0, -1.0])
    assert d.recommended == {
        "block_time_ms": 5500.0,
        "base_gas_price": pytest.approx(110.0),
        "validator_set_size": 90.0,
    }
    assert d.applied == g.defaults() == g.values


def test_paused_runs_no_inference_and_paused_agent_applies_nothing():
    g = governor("paused")
    d = g.decide([1.0, 1.0, 1.0])
    assert d.action is None and d.recommended == d.applied == g.defaults()
    c = governor("conservative")
    d = c.decide([1.0, 1.0, 1.0], paused=True)  # circuit breaker active: recommend, do not apply
    assert d.recommended["block_time_ms"] == 5500.0 and d.applied == c.defaults()
    c.set_mode("autonomous")
    assert c.decide([1.0, 0.0, 0.0]).applied["block_time_ms"] == 6250.0


def test_bad_inputs():
    g = governor("conservative")
    with pytest.raises(ValueError):
        g.decide([1.0, 0.0])
    with pytest.raises(ValueError):
        g.decide([np.nan, 0.0, 0.0])
    with pytest.raises(ConfigError):
        ParameterGovernor([TunedParameter("x", 5.0, 6.0, 10.0)])
    with pytest.raises(ConfigError):
        ParameterGovernor([TunedParameter("x", 5.0, 1.0, 10.0)], max_change_conservative=1.5)


def test_jsonl_log(tmp_path):
    log = JsonlLog(tmp_path / "sub" / "shadow.jsonl")
    log.write({"a": np.float32(0.5), "b": np.arange(3)})
    log.write({"a": 2})
    lines = (tmp_path / "sub" / "shadow.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == [{"a": 0.5, "b": [0, 1, 2]}, {"a": 2}]
