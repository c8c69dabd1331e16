"""Random and static baseline agents."""

from __future__ import annotations

import io

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from hydra.utils import instantiate
from omegaconf import OmegaConf

from rlrun.agents.baselines import RandomAgent, StaticAgent, centre_action, static_baseline
from rlrun.compose import CONF_DIR
from rlrun.config import validate_target
from rlrun.envs.hybrid_targets import HybridTargetsEnv
from rlrun.errors import ConfigError

OBS = spaces.Box(-1.0, 1.0, (2,), np.float32)
BOX = spaces.Box(np.array([0.0, -3.0], np.float32), np.array([2.0, 1.0], np.float32))
HYBRID = spaces.Tuple((spaces.Discrete(4, start=1), spaces.Box(-1.0, 1.0, (2,), np.float32)))
SPACES = [BOX, spaces.Discrete(5), HYBRID]


@pytest.mark.parametrize("space", SPACES)
def test_random_agent_covers_the_space_reproducibly(space):
    a, b, c = (RandomAgent(OBS, space, seed=s) for s in (3, 3, 4))
    obs = np.zeros(2, np.float32)
    xs = [a.act(obs, True) for _ in range(500)]
    assert all(space.contains(x) for x in xs)
    assert [str(x) for x in xs[:20]] == [str(b.act(obs, True)) for _ in range(20)]
    assert [str(x) for x in xs[:20]] != [str(c.act(obs, True)) for _ in range(20)]
    if isinstance(space, spaces.Box):  # uniform: mean near the midpoint, spread near (high-low)/sqrt(12)
        arr = np.array(xs)
        np.testing.assert_allclose(arr.mean(0), (space.low + space.high) / 2, atol=0.15)
        np.testing.assert_allclose(arr.std(0), (space.high - space.low) / np.sqrt(12), rtol=0.1)
    assert a.update(None) == {} and a.uses_replay is False


def test_random_agent_rejects_unbounded_box():
    with pytest.raises(ConfigError, match="bounded"):
        RandomAgent(OBS, spaces.Box(-np.inf, np.inf, (2,), np.float32))


@pytest.mark.parametrize(
    "space, flat, expected",
    [(BOX, [1.5, -2.0], np.array([1.5, -2.0], np.float32)), (spaces.Discrete(5), [3], 3),
     (spaces.Discrete(5), 2, 2), (HYBRID, [2, 0.5, -0.5], (2, np.array([0.5, -0.5], np.float32)))],
)
def test_static_agent_repeats_the_configured_action(space, flat, expected):
    agent = StaticAgent(OBS, space, action=flat)
    assert agent.source == "config"
    for explore in (True, False):
        got = agent.act(np.ones(2, np.float32), explore)
        assert space.contains(got)
        assert str(got) == str(expected)


def test_static_agent_defaults_centre_then_env_default_and_config_wins():
    agent = StaticAgent(OBS, HYBRID)
    assert agent.source == "centre"
    k, x = agent.act(np.zeros(2), False)
    assert k == 1 and np.all(x == 0)
    np.testing.assert_array_equal(centre_action(BOX), [1.0, -1.0])
    agent.use_env_default((3, np.array([0.25, 0.75], np.float32)))
    k, x = agent.act(np.zeros(2), False)
    assert (k, x.tolist(), agent.source) == (3, [0.25, 0.75], "env_default")
    configured = StaticAgent(OBS, HYBRID, action=[4, 0.0, 0.0])
    configured.use_env_default((3, np.array([0.25, 0.75], np.float32)))
    assert configured.act(np.zeros(2), False)[0] == 4  # an explicit config action is never replaced


def test_static_baseline_uses_env_default_action():
    class WithDefault(HybridTargetsEnv):
        def default_action(self):
            return 2, np.array([0.1], np.float32)

    env = WithDefault(layout="shared")
    agent = static_baseline(env)
    assert agent.source == "env_default"
    assert agent.act(np.zeros(3), False)[0] == 2
    plain = static_baseline(HybridTargetsEnv(layout="shared"))
    assert plain.source == "centre"
    assert static_baseline(env, action=[1, -0.5]).act(np.zeros(3), False)[0] == 1


@pytest.mark.parametrize(
    "flat, match",
    [([1.0], "agent.action must be 2 finite"), ([5.0, 0.0], "outside the action space"),
     ([float("nan"), 0.0], "finite")],
)
def test_static_agent_rejects_bad_actions(flat, match):
    with pytest.raises(ConfigError, match=match):
        StaticAgent(OBS, BOX, action=flat)


def test_static_agent_checkpoint_round_trip():
    a = StaticAgent(OBS, HYBRID)
    a.use_env_default((2, np.array([0.5, 0.5], np.float32)))
    raw = io.BytesIO()
    torch.save(a.state_dict(), raw)
    raw.seek(0)
    b = StaticAgent(OBS, HYBRID)
    b.load_state_dict(torch.load(raw, weights_only=True))
    assert b.source == "env_default" and b.act(np.zeros(2), False)[0] == 2


@pytest.mark.parametrize("name, cls", [("random", RandomAgent), ("static", StaticAgent)])
def test_configs_validate_and_run_an_episode(name, cls):
    node = OmegaConf.load(CONF_DIR / "agent" / f"{name}.yaml")
    validate_target(node, "agent")
    env = gym.make("Pendulum-v1")
    agent = instantiate(node, _convert_="all", observation_space=env.observation_space,
                        action_space=env.action_space, device="cpu", seed=0)
    assert type(agent) is cls
    obs, _ = env.reset(seed=0)
    total = 0.0
    for _ in range(200):
        obs, r, terminated, truncated, _ = env.step(agent.act(obs, explore=False))
        total += r
        if terminated or truncated:
            break
    assert truncated and np.isfinite(total)
