"""DeployedRLController: checkpoint loading, deterministic action with the safety clip, the zigbee split,
shadow / active / paused modes, and refusing bad states."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlrun.agents.sac import SAC
from rlrun.checkpoint import save_checkpoint
from rlrun.deploy.controller import DeployedRLController, InvalidStateError, actor_from_state_dict
from rlrun.errors import CheckpointError

OBS = spaces.Box(-10.0, 10.0, shape=(30,), dtype=np.float32)
ACT = spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)


@pytest.fixture
def trained(tmp_path):
    torch.manual_seed(0)
    agent = SAC(OBS, ACT, actor_hidden=[16, 16], critic_hidden=[16, 16], layer_norm=True)
    path = tmp_path / "best.pt"
    save_checkpoint(path, {"agent": agent.state_dict()})
    return agent, path


def test_action_is_the_deterministic_policy_scaled_and_clipped(trained):
    agent, path = trained
    ctl = DeployedRLController(path, max_power=5000.0, mode="autonomous")
    assert ctl.state_dim == 30 and ctl.action_dim == 3
    rng = np.random.default_rng(0)
    for _ in range(5):
        s = rng.normal(size=30).astype(np.float32)
        expected = (agent.act(s, explore=False) + 1.0) * 2500.0
        got = ctl.get_action(s)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-3)
        assert np.all((got >= 0) & (got <= 5000))
    # saturate the policy: the clip keeps the command inside [0, max_power]
    with torch.no_grad():
        ctl.actor.head.bias[:3] = 50.0
    np.testing.assert_allclose(ctl.get_action(np.zeros(30)), 5000.0)


def test_actor_rebuilt_from_weights_only(trained):
    agent, _ = trained
    actor = actor_from_state_dict(agent.actor.state_dict())
    assert any(isinstance(m, torch.nn.LayerNorm) for m in actor.trunk)
    obs = torch.randn(3, 30)
    torch.testing.assert_close(actor.deterministic(obs), agent.actor.deterministic(obs))


def test_zigbee_command_splits_evenly_in_integer_watts():
    cmd = DeployedRLController.compute_zigbee_command(np.array([3001.0, 999.9, 0.0]), [2, 1, 0])
    assert cmd == [[1500, 1500], [999], []]
    assert DeployedRLController.compute_zigbee_command(np.array([100.0, 200.0, 300.0]), [3, 0, 1]) == \
        [[33, 33, 33], [], [300]]
    with pytest.raises(ValueError, match="counts"):
        DeployedRLController.compute_zigbee_command(np.array([1.0, 2.0, 3.0]), [1, 1])
    with pytest.raises(ValueError, match="integers"):
        DeployedRLController.compute_zigbee_command(np.array([1.0, 2.0, 3.0]), [1, -1, 1])


def test_modes_shadow_active_paused(trained, tmp_path):
    _, path = trained
    log = tmp_path / "decisions.jsonl"
    ctl = DeployedRLController(path, mode="shadow", log_path=log)
    s = np.zeros(30, dtype=np.float32)
    d = ctl.step(s, [2, 1, 1])
    assert d.command is None and d.action_w is not None  # recommended, not sent
    ctl.set_mode("autonomous")
    with torch.no_grad():
        ctl.actor.head.bias[:3] = 50.0  # the policy wants full power
    d = ctl.step(s, [2, 1, 1])
    np.testing.assert_allclose(d.action_w, 1250.0)  # autonomous: at most 25 % of max_power per decision
    assert d.command == [[625, 625], [1250], [1250]]
    d = ctl.step(s, [2, 1, 1])
    np.testing.assert_allclose(d.action_w, 2500.0)
    ctl.set_mode("paused")
    d = ctl.step(s, [2, 1, 1])
    assert d.action_w is None and d.command is None
    lines = log.read_text().splitlines()
    assert len(lines) == 3 and '"sent": false' in lines[0] and '"sent": true' in lines[1]


def test_bad_states_get_a_clear_error_and_no_command(trained):
    _, path = trained
    ctl = DeployedRLController(path, mode="autonomous")
    with pytest.raises(InvalidStateError, match=r"shape \(30,\)"):
        ctl.step(np.zeros(29), [1, 1, 1])
    bad = np.zeros(30)
    bad[4] = np.nan
    with pytest.raises(InvalidStateError, match=r"NaN/inf at features \[4\]"):
        ctl.step(bad, [1, 1, 1])
    np.testing.assert_array_equal(ctl.last_sent, 0.0)  # nothing was sent


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        DeployedRLController(tmp_path / "nope.pt")
    path = tmp_path / "x.pt"
    save_checkpoint(path, {"agent": {"modules": {}}})
    with pytest.raises(CheckpointError, match="no policy"):
        DeployedRLController(path)


def test_deploys_the_dynamics_agents_policy(tmp_path):
    from rlrun.agents.nets import mlp

    torch.manual_seed(3)
    policy = mlp(30, [16, 8], 3, output_activation="tanh")
    path = tmp_path / "dyn.pt"
    save_checkpoint(path, {"agent": {"modules": {"policy": policy.state_dict(), "model": {}}}})
    ctl = DeployedRLController(path, mode="autonomous")
    assert ctl.state_dim == 30 and ctl.action_dim == 3
    s = np.random.default_rng(1).normal(size=30).astype(np.float32)
    with torch.no_grad():
        expected = (policy(torch.from_numpy(s).unsqueeze(0))[0].numpy() + 1.0) * 2500.0
    np.testing.assert_allclose(ctl.get_action(s), expected, rtol=1e-5, atol=1e-3)
