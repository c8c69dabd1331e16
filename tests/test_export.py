"""`rlrun export run=<dir> format=fixedpoint [--verify]` on a run directory, the fixed-point agent wrapper,
and which actors export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import rlrun.config  # noqa: F401  (registers the run schema)
from rlrun.agents.nets import mlp
from rlrun.build import build_agent, build_env
from rlrun.checkpoint import save_checkpoint
from rlrun.commands.export import export_command
from rlrun.compose import CONF_DIR as CONF
from rlrun.deploy.export import FixedPointAgent, fixedpoint_from_agent, sequential_layers, wrap_for_inference
from rlrun.deploy.fixedpoint import FixedPointMLP
from rlrun.errors import CheckpointError, ConfigError


def make_run(tmp_path: Path, agent: str = "ddpg", checkpoint: bool = True) -> tuple[Path, object]:
    """A run directory as the trainer leaves it: .hydra/config.yaml and checkpoints/best.pt."""
    overrides = [f"agent={agent}", "env=consensus", "env.max_steps=5", "env.warmup_blocks=0"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    torch.manual_seed(0)
    env = build_env(cfg)
    ag = build_agent(cfg, env)
    if checkpoint:
        save_checkpoint(run / "checkpoints" / "best.pt", {"agent": ag.state_dict(), "trainer": {"step": 7}})
    return run, ag


def test_export_writes_the_seed_network(tmp_path):
    run, agent = make_run(tmp_path)
    assert export_command([f"run={run}", "format=fixedpoint"]) == 0
    out = run / "export" / "fixedpoint"
    header = json.loads((out / "policy.json").read_text())
    assert header["layer_sizes"] == [25, 256, 256, 5] and header["num_params"] == 73_733
    assert header["activations"] == ["relu", "relu", "tanh"] and header["scale"] == 10**8
    assert header["tanh"] == "pade" and header["source"]["step"] == 7
    assert (out / "policy.int64").stat().st_size == 73_733 * 8
    engine = FixedPointMLP.load(out)  # checksum verified on load
    obs = np.random.default_rng(0).uniform(-2, 2, (20, 25))
    policy = FixedPointAgent.from_export(out)
    expected = np.stack([agent.act(o.astype(np.float32), explore=False) for o in obs])
    assert np.abs(policy.act(obs) - expected).max() < 1e-5
    assert np.array_equal(policy.act(obs), from_engine(engine, obs))
    assert not (out / "verify.json").exists()


def from_engine(engine: FixedPointMLP, obs: np.ndarray) -> np.ndarray:
    from rlrun.deploy.fixedpoint import from_fixed, to_fixed

    return from_fixed(engine.forward(to_fixed(obs))).astype(np.float32)


def test_export_verify_reports_float_vs_fixed(tmp_path, capsys):
    run, _ = make_run(tmp_path)
    assert export_command([f"run={run}", "format=fixedpoint", "--verify", "n=30", "seed=3"]) == 0
    report = json.loads((run / "export" / "fixedpoint" / "verify.json").read_text())
    assert report["observations"] == 30 and report["obs_source"] == "env"
    assert report["max_abs_diff"] < 1e-5 and report["mean_abs_diff"] <= report["max_abs_diff"]
    assert "max |float - fixed|" in capsys.readouterr().out
    out2 = tmp_path / "compat"
    code = export_command(
        [f"run={run}", f"out={out2}", "tanh=seed_compat", "verify=true", "n=200", "obs=uniform"]
    )
    compat = json.loads((out2 / "verify.json").read_text())
    assert compat["max_abs_diff"] > 100 * report["max_abs_diff"]  # the seed's formula is not tanh
    assert code == (0 if compat["max_abs_diff"] <= 1e-4 else 1)


def test_export_errors(tmp_path):
    run, _ = make_run(tmp_path, checkpoint=False)
    with pytest.raises(CheckpointError, match="no checkpoints"):
        export_command([f"run={run}"])
    with pytest.raises(ConfigError, match="allowed: fixedpoint"):
        export_command([f"run={run}", "format=onnx"])
    with pytest.raises(ConfigError, match="unexpected argument"):
        export_command([f"run={run}", "--fast"])
    with pytest.raises(ConfigError, match="needs run="):
        export_command(["format=fixedpoint"])
    with pytest.raises(CheckpointError):
        export_command([f"run={tmp_path / 'missing'}"])


def test_fixedpoint_agent_reloads_after_clear_and_wraps(tmp_path):
    _, agent = make_run(tmp_path, checkpoint=False)
    fp = wrap_for_inference(agent, "fixedpoint")
    assert wrap_for_inference(agent, "float") is agent
    obs = np.random.default_rng(1).uniform(-1, 1, 25).astype(np.float32)
    a1 = fp.act(obs, explore=False)
    assert fp.reloads == 1 and np.abs(a1 - agent.act(obs, explore=False)).max() < 1e-5
    fp.clear()  # the circuit breaker's "clear the in-memory agent"
    assert np.array_equal(fp.act(obs, explore=False), a1) and fp.reloads == 2
    with pytest.raises(ConfigError):
        fp.act(obs, explore=True)
    with pytest.raises(ConfigError):
        wrap_for_inference(agent, "int8")


def test_sac_actor_exports_its_deterministic_mean(tmp_path):
    pytest.importorskip("rlrun.agents.sac")
    _, agent = make_run(tmp_path, agent="sac", checkpoint=False)
    engine = fixedpoint_from_agent(agent)
    assert engine.layer_sizes == [25, 256, 256, 5] and engine.num_params == 73_733
    obs = np.random.default_rng(2).uniform(-2, 2, (50, 25))
    with torch.no_grad():
        ref = agent.actor.deterministic(torch.as_tensor(obs, dtype=torch.float32)).double().numpy()
    assert np.abs(engine.act(obs) - ref).max() < 1e-5


def test_unsupported_layers_are_refused():
    with pytest.raises(ConfigError, match="LayerNorm"):
        sequential_layers(mlp(4, [8], 2, layer_norm=True))
    with pytest.raises(ConfigError, match="ELU"):
        sequential_layers(mlp(4, [8], 2, activation="elu"))
    w, b, a = sequential_layers(
        torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    )
    assert a == ["tanh", "identity"] and w[0].shape == (4, 3)
