"""Every config group combination composes and validates; every env passes Gymnasium's check_env."""

import itertools

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

from conftest import compose
from rlrun.build import build_agent, build_env
from rlrun.cli import group_options
from rlrun.config import validate_run
from rlrun.errors import ConfigError

ENVS, AGENTS, REPLAYS = group_options("env"), group_options("agent"), group_options("replay")


@pytest.mark.parametrize(("env", "agent", "replay"), list(itertools.product(ENVS, AGENTS, REPLAYS)))
def test_every_group_combination_composes_and_validates(env, agent, replay):
    cfg = compose([f"env={env}", f"agent={agent}", f"replay={replay}"])
    validate_run(cfg)
    assert cfg.env._target_ and cfg.agent._target_ and cfg.replay._target_


@pytest.fixture(scope="module")
def envs():
    built = {}
    for env in ENVS:
        built[env] = build_env(compose([f"env={env}"]))
    yield built
    for e in built.values():
        e.close()


@pytest.mark.parametrize("env", ENVS)
def test_every_env_passes_check_env(envs, env):
    e = envs[env]
    check_env(e.unwrapped, skip_render_check=True)


@pytest.mark.parametrize(("env", "agent"), list(itertools.product(ENVS, AGENTS)))
def test_agent_env_pairs_build_or_fail_clearly(envs, env, agent):
    cfg = compose([f"env={env}", f"agent={agent}"])
    e = envs[env]
    try:
        a = build_agent(cfg, e)
    except ConfigError as err:  # incompatible spaces, or a required input (e.g. a dataset) missing
        assert str(err) and "\n" not in str(err)  # a one-line reason for the CLI
        return
    obs, _ = e.reset(seed=0)
    action = a.act(obs, explore=True)
    assert e.action_space.contains(action) or isinstance(e.action_space, gym.spaces.Tuple)


def test_tuned_overrides_apply_per_env_agent_pair():
    cfg = compose(["env=reach", "agent=ddpg"])
    assert list(cfg.agent.actor_hidden) == [512, 512] and cfg.agent.critic_arch == "branched"
    cfg = compose(["env=reach", "agent=ddpg", "agent.actor_hidden=[8]"])
    assert list(cfg.agent.actor_hidden) == [8]  # the command line still wins
    cfg = compose(["env=gym", "agent=ddpg"])
    assert list(cfg.agent.actor_hidden) == [256, 256]
