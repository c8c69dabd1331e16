"""Rollup advisory functions (informational) and `rlrun advise run=<dir>`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import rlrun.config  # noqa: F401  (registers the run schema)
from rlrun.build import build_agent, build_env
from rlrun.checkpoint import save_checkpoint
from rlrun.commands.advise import advise_command
from rlrun.compose import CONF_DIR as CONF
from rlrun.deploy.rollup import optimize_rollup_gas, suggest_rollup_profile
from rlrun.envs.consensus import OBSERVATION_NAMES
from rlrun.errors import ConfigError


def observation(**changes: float) -> dict[str, float]:
    calm = dict.fromkeys(OBSERVATION_NAMES, 0.0)
    calm.update(
        block_utilization=0.4,
        tx_count=200.0,
        block_time=5000.0,
        gas_price_50th=100.0,
        gas_price_95th=110.0,
        mempool_size=250.0,  # when the block is built: its 200 transactions + a backlog of 50
        avg_gas_per_tx=75_000.0,
        failed_tx_ratio=0.0,
    )
    calm.update(changes)
    return calm


def test_calm_chain_profile_and_gas():
    obs = observation()
    p = suggest_rollup_profile(obs)
    # demand = 200 tx * 75k gas / 5 s = 3M gas/s + 50 pending * 75k / 60 s = 62.5k -> 3.0625M gas/s;
    # x 2 headroom x 0.5 s L2 block = 3.06M gas -> rounded up to 4M
    assert p["block_time_ms"] == 500 and p["demand_gas_per_s"] == pytest.approx(3_062_500.0)
    assert p["gas_limit"] == 4_000_000
    assert p["settlement_interval_blocks"] == round(10 * (1 + 0.25 / 5) * (1.1**0.5))  # 11
    assert p["settlement_interval_s"] == pytest.approx(p["settlement_interval_blocks"] * 5.0)
    g = optimize_rollup_gas(obs)
    assert g == {
        "congestion": "low",
        "priority_fee_per_gas": 0.0,
        "max_fee_per_gas": 112.5,
        "backlog_blocks": 0.25,
        "defer_settlement": False,
        "informational": True,
    }
    assert obs == observation()  # informational: the input is untouched


def test_congested_chain_batches_more_and_bids_more():
    obs = observation(block_utilization=0.98, mempool_size=1200.0, gas_price_95th=180.0, failed_tx_ratio=0.2)
    p = suggest_rollup_profile(obs)
    # (1 + 2 * 0.9) * (1 + min(5/5, 1)) * sqrt(1.8) = 2.8 * 2 * 1.342 -> 75 blocks
    assert p["settlement_interval_blocks"] == round(10 * 2.8 * 2.0 * 1.8**0.5)
    assert (
        p["settlement_interval_blocks"] > suggest_rollup_profile(observation())["settlement_interval_blocks"]
    )
    assert p["gas_limit"] > suggest_rollup_profile(observation())["gas_limit"]  # turned-away demand counts
    g = optimize_rollup_gas(obs)
    assert g["congestion"] == "high" and g["priority_fee_per_gas"] == pytest.approx(80.0)
    assert g["max_fee_per_gas"] == pytest.approx(225.0) and g["defer_settlement"] is True
    medium = optimize_rollup_gas(observation(block_utilization=0.7))
    assert medium["congestion"] == "medium" and medium["priority_fee_per_gas"] == pytest.approx(5.0)


def test_bounds_and_inputs():
    fast = suggest_rollup_profile(observation(block_time=500.0))
    slow = suggest_rollup_profile(observation(block_time=60_000.0))
    assert fast["block_time_ms"] == 200 and slow["block_time_ms"] == 2000
    empty = suggest_rollup_profile(observation(tx_count=0.0, mempool_size=0.0))
    assert empty["gas_limit"] == 1_000_000
    vec = np.array([observation()[k] for k in OBSERVATION_NAMES])
    assert suggest_rollup_profile(vec) == suggest_rollup_profile(observation())
    with pytest.raises(ValueError):
        suggest_rollup_profile(vec[:24])
    with pytest.raises(ValueError, match="mev_estimate"):
        optimize_rollup_gas({k: v for k, v in observation().items() if k != "mev_estimate"})


def make_run(tmp_path: Path, checkpoint: bool) -> Path:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["env=consensus", "agent=ddpg", "env.warmup_blocks=0"])
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    if checkpoint:
        torch.manual_seed(0)
        agent = build_agent(cfg, build_env(cfg))
        save_checkpoint(
            run / "checkpoints" / "best.pt", {"agent": agent.state_dict(), "trainer": {"step": 1}}
        )
    return run


def files(d: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in d.rglob("*")}


def test_advise_command_prints_advice_and_changes_nothing(tmp_path, capsys):
    run = make_run(tmp_path, checkpoint=True)
    before = files(run)
    assert advise_command([f"run={run}", "steps=2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert files(run) == before
    assert report["simulated_blocks"] == 30 and list(report["observation"]) == list(OBSERVATION_NAMES)
    assert report["rollup_profile"] == suggest_rollup_profile(report["observation"])
    assert report["rollup_gas"]["informational"] is True
    rec = report["policy_recommendation"]
    assert 4500 <= rec["block_time_ms"] <= 5500  # a Shadow recommendation: within the Conservative bound
    run2 = make_run(tmp_path / "b", checkpoint=False)
    assert advise_command([f"run={run2}", "steps=1"]) == 0
    report2 = json.loads(capsys.readouterr().out)
    assert "policy_recommendation" not in report2 and "no policy recommendation" in report2["note"]
    with pytest.raises(ConfigError):
        advise_command([f"run={run}", "steps=0"])
