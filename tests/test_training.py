"""The training loop: learning on the reach task, exact resume, offline data source."""

import gc
import signal
import weakref

import numpy as np
import pytest
import torch

from conftest import compose
from rlrun.checkpoint import load_checkpoint
from rlrun.trainer import Trainer


def test_ddpg_learns_small_reach_task(tmp_path, small_reach):
    cfg = compose([*small_reach, "total_steps=4000", "learning_starts=500", "eval_every=2000",
                   "eval_episodes=10", "agent.batch_size=64"])
    summary = Trainer(cfg, tmp_path).run()
    final = summary["final"]
    # A random policy never reaches the goal (25 steps, return about -25); the optimum needs <= 4 steps.
    assert final["length_mean"] < 6
    assert final["return_mean"] > -2.5
    assert final["metrics"]["final_distance"] < 0.1


def _params(agent):
    return {k: v.clone() for k, v in agent.actor.state_dict().items()} | {
        f"critic.{k}": v.clone() for k, v in agent.critic.state_dict().items()}


@pytest.mark.parametrize("agent", ["ddpg", "td3"])
def test_resume_matches_uninterrupted_run(tmp_path, small_reach, agent):
    """Train 2N steps straight vs. N steps, SIGTERM, resume to 2N: identical networks and replay."""
    n = 610  # mid-episode (25-step episodes): env state and episode accumulators must be restored too
    base = [*small_reach, f"agent={agent}", "agent.actor_hidden=[32]", "agent.critic_hidden=[32]",
            "agent.noise=ou", "learning_starts=200", "eval_every=500", "eval_episodes=1",
            "checkpoint_every=0", "replay.n_step=3", "agent.batch_size=32", f"total_steps={2 * n}"]
    straight = Trainer(compose(base), tmp_path / "a")
    straight.run()

    first = Trainer(compose(base), tmp_path / "b")
    on_step = first.agent.on_step

    def interrupt_at_n(step):
        on_step(step)
        if step == n:
            signal.raise_signal(signal.SIGTERM)

    first.agent.on_step = interrupt_at_n
    assert first.run() == {"status": "interrupted", "signal": signal.SIGTERM, "step": n}
    assert first.progress.episode_lengths[0] != 0, "the test wants a mid-episode checkpoint"

    resumed = Trainer(compose(base), tmp_path / "b", resume=True)
    assert resumed.progress.step == n
    resumed.run()

    pa, pb = _params(straight.agent), _params(resumed.agent)
    assert pa.keys() == pb.keys()
    for k in pa:
        assert torch.equal(pa[k], pb[k]), k
    ra, rb = straight.replay, resumed.replay
    assert ra.size == rb.size == 2 * n - ra.pending  # n-step windows still open at the end
    for name in ("obs", "actions", "rewards", "next_obs", "dones", "discounts"):
        assert np.array_equal(getattr(ra, name)[: ra.size], getattr(rb, name)[: rb.size]), name
    assert straight.progress == resumed.progress
    # metrics.csv holds each episode and evaluation once, exactly as in the uninterrupted run
    assert (tmp_path / "a" / "metrics.csv").read_text() == (tmp_path / "b" / "metrics.csv").read_text()


def test_checkpoint_holds_everything_to_resume(tmp_path, small_reach):
    Trainer(compose([*small_reach, "total_steps=300", "learning_starts=100", "eval_every=0",
                     "eval_episodes=1", "agent.batch_size=32"]), tmp_path).run()
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert set(ckpt["agent"]["modules"]) == {"actor", "critic", "actor_target", "critic_target",
                                             "actor_opt", "critic_opt"}
    assert ckpt["replay"]["size"] == 300
    assert ckpt["trainer"]["step"] == 300
    assert {"torch", "trainer"} <= set(ckpt["rng"])
    assert ckpt["env"] is not None


def test_offline_agent_requires_a_dataset(tmp_path, small_reach):
    from rlrun.errors import ConfigError

    cfg = compose([*small_reach, "total_steps=10"])
    trainer = Trainer(cfg, tmp_path)
    trainer.agent.offline = True  # a DDPG flagged offline must be given data
    trainer.replay.add_dataset({
        "obs": np.zeros((5, 3)), "actions": np.zeros((5, 3)), "rewards": np.arange(5.0),
        "next_obs": np.ones((5, 3)), "terminated": np.array([0, 0, 0, 0, 1.0])})
    assert trainer.replay.size == 5 and trainer.replay.dones[4] == 1
    with pytest.raises(ConfigError, match="dataset"):
        trainer.replay.add_dataset({"obs": np.zeros((2, 3)), "rewards": np.zeros(2)})


def test_offline_prioritized_replay_anneals_beta_and_resume_keeps_priorities(tmp_path):
    """Offline (agent=cql) with replay=prioritized: beta anneals over gradient updates, and a resumed run keeps
    the learned priorities, so it ends bit-identical to an uninterrupted one."""
    rng = np.random.default_rng(0)
    n = 256
    path = tmp_path / "data.npz"
    np.savez(path, obs=rng.normal(size=(n, 3)).astype(np.float32),
             actions=rng.uniform(-1, 1, (n, 3)).astype(np.float32), rewards=rng.normal(size=n).astype(np.float32),
             next_obs=rng.normal(size=(n, 3)).astype(np.float32), terminated=np.zeros(n, bool))
    base = ["env=reach", "env.dim=3", "agent=cql", f"dataset={path}", "replay=prioritized", "replay.beta_steps=100",
            "agent.actor_hidden=[16]", "agent.critic_hidden=[16]", "agent.batch_size=16", "total_steps=60",
            "eval_every=0", "eval_episodes=1", "checkpoint_every=0", "progress=false", "plots=false",
            "baseline=null"]
    straight = Trainer(compose(base), tmp_path / "a")
    straight.run()
    assert straight.replay.beta == pytest.approx(0.4 + 0.6 * 60 / 100)

    first = Trainer(compose(base), tmp_path / "b")
    update = first.agent.update

    def interrupt_after_30(batch):
        out = update(batch)
        if first.agent.updates == 30:
            signal.raise_signal(signal.SIGTERM)
        return out

    first.agent.update = interrupt_after_30
    assert first.run()["step"] == 30
    saved = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")["replay"]["priorities"]
    resumed = Trainer(compose(base), tmp_path / "b", resume=True)
    assert np.array_equal(resumed.replay.tree.leaves[:n], saved.numpy())
    assert not np.all(saved.numpy() == saved.numpy()[0])  # priorities were learned, not all at max
    resumed.run()
    for k, v in straight.agent.actor.state_dict().items():
        assert torch.equal(v, resumed.agent.actor.state_dict()[k]), k


def test_resume_without_env_state_drops_the_interrupted_n_step_windows(tmp_path):
    """An env without get_state restarts its episodes on resume; the open n-step windows of the interrupted
    episodes must not be closed with the new episodes' states."""
    from omegaconf import OmegaConf

    def cfg():
        c = compose(["agent=ddpg", "agent.actor_hidden=[8]", "agent.critic_hidden=[8]", "agent.batch_size=8",
                     "replay.n_step=3", "num_envs=2", "total_steps=60", "learning_starts=100", "eval_every=0",
                     "eval_episodes=1", "checkpoint_every=0", "progress=false", "plots=false", "baseline=null"])
        c.env = OmegaConf.create({"_target_": "counting_env.StatelessCountingEnv", "max_steps": 7})
        return c

    first = Trainer(cfg(), tmp_path)
    on_step = first.agent.on_step

    def interrupt_at_24(step):
        on_step(step)
        if step == 24:
            signal.raise_signal(signal.SIGTERM)

    first.agent.on_step = interrupt_at_24
    first.run()
    assert first.replay.pending > 0
    resumed = Trainer(cfg(), tmp_path, resume=True)
    resumed.run()
    r = resumed.replay
    assert np.array_equal(r.obs[: r.size, :2], r.next_obs[: r.size, :2]), "a window spans two episodes"


@pytest.mark.slow
def test_sigkill_at_20_random_points_then_resume_ends_like_an_uninterrupted_run(tmp_path):
    """Fault injection: `rlrun train` is SIGKILLed 20 times at random moments (start-up, mid-step, inside a
    checkpoint write), each time resumed from whatever `last.pt` survived; the finished run dir has the same
    networks and metrics.csv as a run that was never interrupted. 30,000 steps (about 40 s of training here)
    so that the 20 kills, each after 0.5-4 s of which about 2 s are start-up, land before the run can finish
    even on a quiet machine (10,000 steps finished after 19 kills once)."""
    import random
    import subprocess
    import sys
    import time

    args = ["train", "env=reach", "env.dim=3", "env.max_steps=25", "agent=ddpg", "agent.actor_hidden=[32]",
            "agent.critic_hidden=[32]", "agent.batch_size=32", "total_steps=30000", "learning_starts=200",
            "checkpoint_every=100", "eval_every=1000", "eval_episodes=2", "progress=false", "plots=false",
            "baseline=null", "seed=0"]
    straight, victim = tmp_path / "a", tmp_path / "b"
    subprocess.run([sys.executable, "-m", "rlrun.cli", *args, f"hydra.run.dir={straight}"], check=True,
                   capture_output=True)
    rng = random.Random(0)
    kills, finished = 0, False
    while not finished:
        resumable = (victim / "checkpoints" / "last.pt").is_file()
        cmd = ["train", f"resume={victim}"] if resumable else [*args, f"hydra.run.dir={victim}"]
        proc = subprocess.Popen([sys.executable, "-m", "rlrun.cli", *cmd], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        if kills < 20:
            time.sleep(rng.uniform(0.5, 4.0))
            if proc.poll() is None:
                proc.kill()
                kills += 1
        finished = proc.wait() == 0
    assert kills == 20
    a, b = (load_checkpoint(d / "checkpoints" / "last.pt") for d in (straight, victim))
    for name, module in a["agent"]["modules"].items():
        for k, v in module.items():
            if torch.is_tensor(v):
                assert torch.equal(v, b["agent"]["modules"][name][k]), (name, k)
    assert (straight / "metrics.csv").read_text() == (victim / "metrics.csv").read_text()
    assert (victim / "eval.json").is_file()



class _Leftover:
    """Stands for a finished run's objects: a reference cycle, which only the cyclic collector frees."""

    def __init__(self) -> None:
        self.me = self


def test_the_trainer_frees_what_earlier_runs_left_instead_of_freezing_it(tmp_path, small_reach):
    """The trainer freezes every object that exists when it starts (out of the cyclic collector's passes, until
    it closes). Garbage left by an earlier run in the same process (a sequential sweep) must be collected
    first, or its replay buffer and networks would stay in memory for the whole next run."""
    cfg = [*small_reach, "total_steps=200", "learning_starts=100", "eval_every=0", "eval_episodes=1",
           "agent.batch_size=32"]
    first = Trainer(compose(cfg), tmp_path / "a")
    first.run()
    agent = weakref.ref(first.agent)
    del first
    leftover = _Leftover()
    cycle = weakref.ref(leftover)
    del leftover
    gc.disable()  # no automatic pass may free the cycle before the trainer does
    try:
        Trainer(compose(cfg), tmp_path / "b").close()
        assert cycle() is None
        assert agent() is None
    finally:
        gc.enable()
    assert gc.get_freeze_count() == 0  # closed: nothing stays frozen
