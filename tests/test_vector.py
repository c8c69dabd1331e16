"""Parallel experience collection: env copies in this process, in worker processes and in Ray actors."""

import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from conftest import compose, run_cli
from rlrun.build import build_agent, build_env, build_pool, build_replay
from rlrun.errors import ConfigError, EnvCopyError
from rlrun.evaluate import evaluate_policy
from rlrun.trainer import Trainer

TESTS = Path(__file__).parent
FAST = ["progress=false", "plots=false", "baseline=null"]


def counting(overrides: list[str], **env_kwargs) -> "OmegaConf":
    """The ddpg config with env=CountingEnv (tests/counting_env.py)."""
    cfg = compose(["agent=ddpg", "agent.actor_hidden=[16]", "agent.critic_hidden=[16]", "agent.batch_size=16",
                   *FAST, *overrides])
    cfg.env = OmegaConf.create({"_target_": "counting_env.CountingEnv", **env_kwargs})
    return cfg


# ---- num_envs=1 is the single-env loop -----------------------------------------------------------------

def test_num_envs_1_reproduces_the_single_env_loop(tmp_path, small_reach):
    """The vectorised trainer with one copy against a plain act/step/store/learn loop written out here:
    the same replay contents and bit-identical networks."""
    over = [*small_reach, "agent.actor_hidden=[16]", "agent.critic_hidden=[16]", "agent.noise=ou",
            "replay.n_step=2", "learning_starts=60", "total_steps=200", "eval_every=0", "checkpoint_every=0",
            "agent.batch_size=16", "baseline=null"]
    trainer = Trainer(compose(over), tmp_path / "run")
    trainer.run()

    cfg = compose(over)
    torch.manual_seed(int(cfg.seed))
    env = build_env(cfg)
    agent = build_agent(cfg, env)
    replay = build_replay(cfg, env, agent)
    rng = np.random.default_rng(int(cfg.seed) + 2)
    obs, _ = env.reset(seed=int(cfg.seed))
    for step in range(1, 201):
        action = (rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32)
                  if step <= 60 else agent.act(obs, explore=True))
        nxt, r, term, trunc, _ = env.step(action)
        replay.add(obs, action, r, nxt, term, trunc)
        obs = nxt
        if term or trunc:
            agent.on_episode_end()
            obs, _ = env.reset()
        if step >= 60:
            agent.update(replay.sample(agent.batch_size))

    for name in ("obs", "actions", "rewards", "next_obs", "dones", "discounts"):
        assert np.array_equal(getattr(replay, name)[: replay.size], getattr(trainer.replay, name)[: replay.size])
    for k, v in agent.actor.state_dict().items():
        assert torch.equal(v, trainer.agent.actor.state_dict()[k]), k


# ---- bookkeeping over copies ---------------------------------------------------------------------------

def test_no_stored_transition_crosses_an_episode_boundary(tmp_path):
    cfg = counting(["num_envs=3", "total_steps=300", "learning_starts=300", "eval_every=0", "eval_episodes=1"],
                   max_steps=4)
    trainer = Trainer(cfg, tmp_path)
    trainer.run()
    r = trainer.replay
    obs, nxt = r.obs[: r.size], r.next_obs[: r.size]
    assert r.size == 300
    assert np.array_equal(obs[:, :2], nxt[:, :2]), "a transition links two copies or two episodes"
    assert np.array_equal(nxt[:, 2], obs[:, 2] + 1)
    assert set(np.unique(obs[:, 0])) == {0.0, 1.0, 2.0}  # copies were reset with seeds seed+0, +1, +2
    assert np.array_equal(r.dones[: r.size], np.zeros(300))  # truncations only: no terminal flag
    # metrics.csv: one row per episode, each of length 4 and return 1+2+3+4
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    episodes = [dict(zip(header, row.split(","), strict=False)) for row in rows[1:]]
    episodes = [e for e in episodes if e["kind"] == "train"]
    assert len(episodes) == 75
    assert {float(e["return"]) for e in episodes} == {10.0} and {int(e["length"]) for e in episodes} == {4}


def test_n_step_windows_are_kept_per_copy(tmp_path):
    """n=3, gamma=0.5, rewards t+1: R = r_t + 0.5 r_{t+1} + 0.25 r_{t+2}, shorter at the episode end."""
    cfg = counting(["num_envs=2", "total_steps=20", "learning_starts=100", "eval_every=0", "eval_episodes=1",
                    "replay.n_step=3", "agent.gamma=0.5"], max_steps=5)
    trainer = Trainer(cfg, tmp_path)
    trainer.run()
    r = trainer.replay
    expected = {0: 1 + 0.5 * 2 + 0.25 * 3, 1: 2 + 0.5 * 3 + 0.25 * 4, 2: 3 + 0.5 * 4 + 0.25 * 5,
                3: 4 + 0.5 * 5, 4: 5.0}
    for i in range(r.size):
        t = int(r.obs[i, 2])
        assert r.rewards[i] == pytest.approx(expected[t])
        assert r.obs[i, 0] == r.next_obs[i, 0] and r.obs[i, 1] == r.next_obs[i, 1]
        assert r.next_obs[i, 2] == min(t + 3, 5)
        assert r.discounts[i] == pytest.approx(0.5 ** (min(t + 3, 5) - t))
    assert r.size == 20  # two copies x two whole episodes, every window closed


def test_train_every_counts_env_steps_summed_over_copies(tmp_path):
    """train_every=4 with 3 copies: one round per 4 summed env steps, so the update-to-data ratio stays."""
    cfg = counting(["num_envs=3", "total_steps=120", "learning_starts=24", "train_every=4", "gradient_steps=2",
                    "eval_every=0", "eval_episodes=1"], max_steps=1000)
    trainer = Trainer(cfg, tmp_path)
    trainer.run()
    assert trainer.progress.step == 120
    assert trainer.agent.updates == 2 * (120 // 4 - 23 // 4)


def test_ou_noise_is_per_copy(small_reach):
    cfg = compose([*small_reach, "agent.noise=ou", "agent.actor_hidden=[8]", "agent.critic_hidden=[8]"])
    agent = build_agent(cfg, build_env(cfg))
    obs = np.zeros((3, 3), dtype=np.float32)
    agent.act_batch(obs, explore=True)
    agent.act_batch(obs, explore=True)
    state = agent.noise.state.copy()
    assert state.shape == (3, 3) and np.all(state != 0)
    agent.on_episode_end(1)
    assert np.all(agent.noise.state[1] == 0) and np.array_equal(agent.noise.state[[0, 2]], state[[0, 2]])


def test_evaluation_does_not_depend_on_the_number_of_copies(small_reach):
    """Episode i has seed 1000 + i whatever the copies; only the float rounding of a batched forward pass
    (3 rows vs 1) can differ."""
    cfg = compose([*small_reach, "agent.actor_hidden=[8]", "agent.critic_hidden=[8]"])
    agent = build_agent(cfg, build_env(cfg))
    results = []
    for n in (1, 3):
        with build_pool(cfg, evaluation=True, num_envs=n) as pool:
            results.append(evaluate_policy(pool, agent, 5, 1000))
    assert results[0]["returns"] == pytest.approx(results[1]["returns"], rel=1e-6)
    assert results[0]["metrics"] == pytest.approx(results[1]["metrics"], rel=1e-6)


# ---- backends agree; resume ----------------------------------------------------------------------------

def test_async_workers_give_the_same_run_as_sync(tmp_path, small_reach):
    base = [*small_reach, "agent.actor_hidden=[16]", "agent.critic_hidden=[16]", "num_envs=2",
            "total_steps=300", "learning_starts=100", "eval_every=150", "eval_episodes=3", "agent.batch_size=16"]
    Trainer(compose([*base, "vector=sync"]), tmp_path / "sync").run()
    Trainer(compose([*base, "vector=async"]), tmp_path / "async").run()
    assert (tmp_path / "sync" / "metrics.csv").read_text() == (tmp_path / "async" / "metrics.csv").read_text()


@pytest.mark.parametrize("vector", ["sync", "async"])
def test_resume_with_two_copies_matches_uninterrupted_run(tmp_path, small_reach, vector):
    n = 310  # mid-episode in both copies (25-step episodes, 2 copies)
    base = [*small_reach, "agent.actor_hidden=[16]", "agent.critic_hidden=[16]", "agent.noise=ou",
            "num_envs=2", f"vector={vector}", "learning_starts=100", "eval_every=200", "eval_episodes=2",
            "checkpoint_every=0", "replay.n_step=3", "agent.batch_size=16", f"total_steps={2 * n}"]
    straight = Trainer(compose(base), tmp_path / "a")
    straight.run()

    first = Trainer(compose(base), tmp_path / "b")
    on_step = first.agent.on_step

    def interrupt_at_n(step):
        on_step(step)
        if step == n:
            signal.raise_signal(signal.SIGTERM)

    first.agent.on_step = interrupt_at_n
    assert first.run()["status"] == "interrupted"
    assert all(length != 0 for length in first.progress.episode_lengths)
    resumed = Trainer(compose(base), tmp_path / "b", resume=True)
    resumed.run()
    for k, v in straight.agent.actor.state_dict().items():
        assert torch.equal(v, resumed.agent.actor.state_dict()[k]), k
    ra, rb = straight.replay, resumed.replay
    assert ra.size == rb.size
    for name in ("obs", "actions", "rewards", "next_obs", "dones", "discounts"):
        assert np.array_equal(getattr(ra, name)[: ra.size], getattr(rb, name)[: rb.size]), name
    assert straight.progress == resumed.progress
    assert (tmp_path / "a" / "metrics.csv").read_text() == (tmp_path / "b" / "metrics.csv").read_text()


# ---- failing copies ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("vector", "how", "says"), [
    ("sync", "raise", "env copy 1: RuntimeError: boom at step 7"),
    ("async", "raise", "env copy 1: RuntimeError: boom at step 7"),
    ("async", "kill", "env copy 1: worker process"),
])
def test_a_failing_copy_stops_the_run_with_one_line_and_the_run_resumes(tmp_path, vector, how, says):
    run_dir = tmp_path / "run"
    args = ["train", "env=reach", "env._target_=counting_env.CountingEnv", "env.max_steps=1000",
            "+env.fail_seed=1", "+env.fail_at=7", f"+env.how={how}", "agent=ddpg", "agent.actor_hidden=[8]",
            "agent.critic_hidden=[8]", "num_envs=2", f"vector={vector}", "total_steps=40", "learning_starts=10",
            "agent.batch_size=8", "eval_every=0", "eval_episodes=1", *FAST, f"hydra.run.dir={run_dir}"]
    proc = run_cli(args, tmp_path, env={"PYTHONPATH": str(TESTS)})
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and says in last, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    # the run's env is the test's own class: resuming it means trusting that module (README, Security)
    proc = run_cli(["train", f"resume={run_dir}", "env.fail_seed=-1", "trust_config=counting_env."], tmp_path,
                   env={"PYTHONPATH": str(TESTS)})
    assert proc.returncode == 0, proc.stderr
    assert "final eval" in proc.stdout + proc.stderr


def test_a_hanging_copy_is_named_after_env_timeout(tmp_path):
    cfg = counting(["num_envs=2", "vector=async", "env_timeout=1", "total_steps=40", "learning_starts=10",
                    "eval_every=0", "eval_episodes=1"], max_steps=1000, fail_seed=0, fail_at=3, how="hang")
    trainer = Trainer(cfg, tmp_path)
    with pytest.raises(EnvCopyError, match=r"env copy 0: no answer to step within 1 s"):
        trainer.run()
    assert (tmp_path / "checkpoints" / "last.pt").is_file()


# ---- bad input -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "says"), [
    (["num_envs=0"], "num_envs must be >= 1"),
    (["vector=threads"], "vector must be one of sync, async, ray"),
    (["env=relay", "agent=qrouting", "num_envs=2"], "agent QRouting acts for one env stream only"),
])
def test_bad_vector_settings_are_one_line_and_write_nothing(tmp_path, args, says):
    run_dir = tmp_path / "run"
    proc = run_cli(["train", *args, f"hydra.run.dir={run_dir}"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and says in proc.stderr, proc.stderr
    assert not run_dir.exists()


def test_vector_ray_without_ray_names_the_extra(monkeypatch):
    import importlib.util

    from rlrun.config import validate_vector

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(ConfigError, match=r"pip install 'rlrun\[ray\]'"):
        validate_vector(compose(["vector=ray"]))


# ---- Ray -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def local_ray():
    import os

    ray = pytest.importorskip("ray")
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), path) if p)  # Ray workers import counting_env
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
    if path is None:
        os.environ.pop("PYTHONPATH")
    else:
        os.environ["PYTHONPATH"] = path


def test_ray_actors_give_the_same_run_as_sync(tmp_path, small_reach, local_ray):
    base = [*small_reach, "agent.actor_hidden=[16]", "agent.critic_hidden=[16]", "num_envs=2",
            "total_steps=200", "learning_starts=100", "eval_every=100", "eval_episodes=2", "agent.batch_size=16"]
    Trainer(compose([*base, "vector=sync"]), tmp_path / "sync").run()
    Trainer(compose([*base, "vector=ray"]), tmp_path / "ray").run()
    assert (tmp_path / "sync" / "metrics.csv").read_text() == (tmp_path / "ray" / "metrics.csv").read_text()


def test_a_lost_ray_actor_is_named(tmp_path, local_ray):
    cfg = counting(["num_envs=2", "vector=ray", "total_steps=40", "learning_starts=10", "eval_every=0",
                    "eval_episodes=1"], max_steps=1000, fail_seed=1, fail_at=5, how="kill")
    trainer = Trainer(cfg, tmp_path)
    with pytest.raises(EnvCopyError, match=r"env copy 1: Ray actor lost during step"):
        trainer.run()
    assert (tmp_path / "checkpoints" / "last.pt").is_file()


def test_sweep_jobs_run_their_env_copies_in_worker_processes(tmp_path):
    """joblib's loky workers start the copies' worker processes too (a start-method pitfall)."""
    sweep_dir = tmp_path / "sweep"
    proc = run_cli(["sweep", "env=reach", "env.dim=3", "env.max_steps=25", "agent=ddpg", "agent.actor_hidden=[8]",
                    "agent.critic_hidden=[8]", "num_envs=2", "vector=async", "total_steps=100", "learning_starts=50",
                    "eval_episodes=2", "agent.batch_size=16", "seed=0,1", *FAST, f"hydra.sweep.dir={sweep_dir}"],
                   tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = (sweep_dir / "summary.csv").read_text().splitlines()
    assert len(summary) == 3 and all(",finished," in row for row in summary[1:]), summary
