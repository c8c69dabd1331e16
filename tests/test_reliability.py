"""Never lose or mix a run, never run untrusted code, one line per bad input (issue 16).

Each test reproduces one failure of the issue: two writers of one run directory, Ctrl-C to a sweep, orphaned
temp files, a signal during the final evaluation, a crafted run directory, full disks, read-only run dirs.
"""

from __future__ import annotations

import csv
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from conftest import RLRUN, compose, run_cli
from rlrun.checkpoint import LOCK_NAME, RunDirLock, save_checkpoint
from rlrun.errors import CheckpointError, ConfigError, RunDirBusyError
from rlrun.trainer import Trainer

TINY = ["env=reach", "env.dim=2", "env.max_steps=20", "env.step_scale=0.3", "agent.actor_hidden=[16]",
        "agent.critic_hidden=[16]", "agent.critic_arch=concat", "replay.capacity=5000", "agent.batch_size=16",
        "learning_starts=50", "eval_episodes=2", "progress=false", "plots=false"]


def _digest(run: Path) -> dict[str, str]:
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*")) if p.is_file()}


def _one_line_error(proc: subprocess.CompletedProcess, expected: str, code: int = 2) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == code, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert expected in lines[0], lines[0]
    return lines[0]


def _hold_lock(path: Path, pid_text: str | None = None) -> subprocess.Popen:
    """Another process holding an flock on `path` (writing `pid_text`, default its own pid) until killed."""
    code = ("import fcntl, os, sys, time\n"
            f"fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            f"os.write(fd, ({pid_text!r} or str(os.getpid())).encode())\n"
            "print('locked', flush=True)\ntime.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.fixture
def finished_run(tmp_path) -> Path:
    """A finished run with the .hydra files the CLI writes (what eval and resume load)."""
    run = tmp_path / "run"
    cfg = compose([*TINY, "total_steps=100", "eval_every=0", "checkpoint_every=0"])
    Trainer(cfg, run).run()
    (run / ".hydra").mkdir()
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    OmegaConf.save({"hydra": {"runtime": {"choices": {"env": "reach", "agent": "ddpg"}}}},
                   run / ".hydra" / "hydra.yaml")
    return run


# ---- 1. a run directory belongs to one process ------------------------------------------------------------

def test_a_second_writer_is_refused_and_touches_nothing(tmp_path, finished_run):
    before = _digest(finished_run)
    holder = _hold_lock(finished_run / LOCK_NAME)
    try:
        with pytest.raises(RunDirBusyError, match=f"in use by another rlrun process \\(pid {holder.pid}\\)"):
            Trainer(compose([*TINY, "total_steps=100"]), finished_run)
        proc = run_cli(["train", *TINY, "total_steps=100", f"hydra.run.dir={finished_run}"], tmp_path)
        _one_line_error(proc, "is in use by another rlrun process")
        proc = run_cli(["train", f"resume={finished_run}"], tmp_path)
        _one_line_error(proc, "is in use by another rlrun process")
    finally:
        holder.kill()
        holder.wait()
    after = _digest(finished_run)
    after.pop(LOCK_NAME)  # the holder's own file
    assert after == before


def test_a_stale_lock_does_not_block_the_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_NAME).write_text(f"{_dead_pid()}\n")  # a SIGKILLed run: file left, flock gone with it
    with RunDirLock(run):
        assert (run / LOCK_NAME).read_text().strip() == str(os.getpid())
    orphan = _hold_lock(run / LOCK_NAME, pid_text=str(_dead_pid()))  # still flocked, its run long dead
    try:
        with RunDirLock(run):
            assert (run / LOCK_NAME).read_text().strip() == str(os.getpid())
    finally:
        orphan.kill()
        orphan.wait()
    assert not (run / LOCK_NAME).exists()


def test_a_forked_child_does_not_keep_the_lock(tmp_path):
    pid_file = tmp_path / "child.pid"
    code = ("import os, time\nfrom rlrun.checkpoint import RunDirLock\n"
            f"RunDirLock({str(tmp_path / 'run')!r}).acquire()\n"
            "child = os.fork()\n"
            "if child == 0:\n    time.sleep(30)\n    os._exit(0)\n"
            f"open({str(pid_file)!r}, 'w').write(str(child))\nos._exit(0)\n")
    subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL, timeout=60)
    child = int(pid_file.read_text())
    try:
        with RunDirLock(tmp_path / "run"):  # the parent died, its env-worker-like child lives on
            assert (tmp_path / "run" / LOCK_NAME).read_text().strip() == str(os.getpid())
    finally:
        os.kill(child, signal.SIGKILL)


def test_default_run_dirs_never_collide(tmp_path, monkeypatch):
    from rlrun.run_dir import claim_run_dir, resolve_run_dir

    monkeypatch.chdir(tmp_path)
    first, second = resolve_run_dir(["env=reach"]), resolve_run_dir(["env=reach"])
    assert first != second and first.parent == second.parent == Path("outputs/train/reach-ddpg")
    a, created_a, lock_a = claim_run_dir(first, given=False)
    b, created_b, lock_b = claim_run_dir(first, given=False)  # same instant: a suffix, not the same dir
    assert a == first and b == first.with_name(first.name + "_1") and created_a and created_b
    lock_a.release()
    lock_b.release()


# ---- 2. Ctrl-C to a sweep, failing sweeps ----------------------------------------------------------------

def _interrupted_sweep(tmp_path: Path, launcher: list[str], running: list[str]) -> tuple[str, str, dict]:
    """Start a sweep of 3 long jobs, Ctrl-C it once the `running` jobs train; (stdout, stderr, job statuses)."""
    sweep = tmp_path / "sweep"
    args = ["sweep", *TINY, "total_steps=1000000", "eval_every=0", "checkpoint_every=0", "seed=0,1,2",
            "progress=false", *launcher, f"hydra.sweep.dir={sweep}"]
    proc = subprocess.Popen([*RLRUN, *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not all((sweep / j / "metrics.csv").is_file() for j in running):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    with (sweep / "summary.csv").open() as f:
        status = {row["job"]: row["status"] for row in csv.DictReader(f)}
    for job in running:
        ckpt = sweep / job / "checkpoints"
        assert (ckpt / "last.pt").is_file() and not list(ckpt.glob(".*.tmp"))
    return out, err, status


def test_ctrl_c_to_a_sweep_lets_every_job_checkpoint(tmp_path):
    out, _, status = _interrupted_sweep(tmp_path, ["hydra.launcher.n_jobs=2"], running=["0", "1"])
    assert status == {"0": "interrupted", "1": "interrupted", "2": "not started"}
    assert "sweep summary" in out


def test_ctrl_c_to_a_sequential_sweep_starts_no_more_jobs(tmp_path):
    _, _, status = _interrupted_sweep(tmp_path, ["hydra/launcher=basic"], running=["0"])
    assert status == {"0": "interrupted", "1": "not started", "2": "not started"}


def test_a_sweep_with_failed_jobs_exits_non_zero(tmp_path):
    proc = run_cli(["sweep", "env=reach", "agent=cql", "total_steps=10", "seed=0,1", "hydra/launcher=basic",
                    "progress=false", "hydra.sweep.dir=sw"], tmp_path)  # cql without a dataset fails
    assert proc.returncode == 1, proc.stderr
    assert (tmp_path / "sw" / "summary.csv").read_text().count(",failed,") == 2


# ---- 3. temp files, signals during the final evaluation, resuming a finished run --------------------------

def _eval_rows(run: Path) -> list[int]:
    with (run / "metrics.csv").open() as f:
        return [int(r["step"]) for r in csv.DictReader(f) if r["kind"] == "eval"]


@pytest.mark.parametrize("during", ["final", "baseline"])
def test_sigterm_during_the_final_evaluation_is_resumable(tmp_path, during):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    orphan = run / "checkpoints" / ".last.pt.k1ll3d.tmp"
    orphan.write_bytes(b"x" * 1000)
    trainer = Trainer(compose([*TINY, "total_steps=100", "eval_every=0", "checkpoint_every=0"]), run)
    assert not orphan.exists()
    policy = trainer.agent if during == "final" else trainer.baseline
    act = policy.act_batch if during == "final" else policy.act

    def act_then_sigterm(*args, **kwargs):
        if trainer.progress.step == 100:
            signal.raise_signal(signal.SIGTERM)
        return act(*args, **kwargs)

    setattr(policy, "act_batch" if during == "final" else "act", act_then_sigterm)
    assert trainer.run() == {"status": "interrupted", "signal": signal.SIGTERM, "step": 100}
    assert "interrupted by SIGTERM during the final evaluation" in (run / "train.log").read_text()
    assert not (run / "eval.json").exists() and not list(run.rglob("*.tmp"))
    resumed = Trainer(compose([*TINY, "total_steps=100", "eval_every=0", "checkpoint_every=0"]), run, resume=True)
    assert resumed.run()["status"] == "finished"
    assert _eval_rows(run) == [100]
    again = Trainer(compose([*TINY, "total_steps=100", "eval_every=0", "checkpoint_every=0"]), run, resume=True)
    assert again.run()["status"] == "finished"
    assert _eval_rows(run) == [100], "resuming a finished run wrote its final evaluation twice"


# ---- 8. train.log, file modes, --help, refused runs ------------------------------------------------------

def test_train_log_holds_the_run_messages(finished_run):
    log = (finished_run / "train.log").read_text()
    assert "final eval: return" in log and "baseline static" in log


def test_checkpoints_get_the_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "c.pt", {"x": torch.zeros(1)})
    finally:
        os.umask(old)
    assert (tmp_path / "c.pt").stat().st_mode & 0o777 == 0o644


def test_eval_help_and_refused_runs_leave_no_directory(tmp_path):
    proc = run_cli(["eval", "--help"], tmp_path)
    assert proc.returncode == 0 and "run=<dir>" in proc.stdout
    proc = run_cli(["train", "env=gym", "env.id=CartPole-v1", "total_steps=10"], tmp_path)
    _one_line_error(proc, "cannot drive action space Discrete(2)")
    assert not list(tmp_path.glob("outputs/train/*/*")) and not list(tmp_path.glob("outputs/train/*"))
    with pytest.raises(ConfigError, match="offline"):
        Trainer(compose(["env=reach", "env.dim=2", "agent=cql", "progress=false"]), tmp_path / "refused")
    assert not (tmp_path / "refused").exists()


def test_disk_full_and_read_only_keep_the_previous_checkpoint(tmp_path, monkeypatch, finished_run):
    last = finished_run / "checkpoints" / "last.pt"
    before = last.read_bytes()

    def full_disk(obj, f):
        f.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed writing "
                           "file data/0: file write failed")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointError, match="disk full or write error.*previous checkpoint is intact"):
        save_checkpoint(last, {"x": 1})
    monkeypatch.undo()
    assert last.read_bytes() == before and not list(last.parent.glob(".*.tmp"))

    def read_only(*args, **kwargs):  # what mkstemp meets in a read-only directory (root ignores chmod)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tempfile.mkstemp", read_only)
    with pytest.raises(CheckpointError, match="cannot write checkpoint .*: Permission denied"):
        save_checkpoint(last, {"x": 1})
    assert last.read_bytes() == before


# ---- 7. bad values are one line before training -----------------------------------------------------------

@pytest.mark.parametrize(("args", "expected"), [
    (["agent.batch_size=-1"], "agent.batch_size must be >= 1, got -1"),
    (["agent.batch_size=0"], "agent.batch_size must be >= 1, got 0"),
    (["agent.gamma=5"], "agent.gamma must be in (0, 1], got 5"),
    (["agent.gamma=0"], "agent.gamma must be in (0, 1], got 0"),
    (["env=relay", "agent=dqn", "env.load=nan"], "env.load=nan is not a number"),
    (["env=relay", "agent=dqn", "env.load=1e12"], "env.load must be in (0, 5000]"),
])
def test_bad_values_are_config_errors(tmp_path, monkeypatch, capsys, args, expected):
    from rlrun.cli import main

    monkeypatch.chdir(tmp_path)
    try:
        code = main(["train", *args, "total_steps=10", "progress=false"])
    except SystemExit as e:  # refused by the env's constructor inside Hydra's task function
        code = e.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and expected in err, err
    assert not list(tmp_path.glob("outputs/train/*/*"))


# ---- 4. a run directory's config is code ------------------------------------------------------------------

@pytest.fixture
def trust_reset():
    from rlrun.trust import set_trust

    yield set_trust
    set_trust(None)


def test_a_crafted_run_dir_builds_nothing_outside_rlrun(tmp_path, monkeypatch, capsys, finished_run, trust_reset):
    from rlrun.cli import main

    sentinel = tmp_path / "pwned"
    cfg = OmegaConf.load(finished_run / ".hydra" / "config.yaml")
    cfg.env = {"_target_": "os.mkdir", "path": str(sentinel)}  # a file writer: Hydra's blocklist lets it pass
    OmegaConf.save(cfg, finished_run / ".hydra" / "config.yaml")
    before = _digest(finished_run)
    monkeypatch.chdir(tmp_path)
    for args in (["eval", f"run={finished_run}"], ["train", f"resume={finished_run}"],
                 ["export", f"run={finished_run}", "format=fixedpoint"], ["collect", f"run={finished_run}"]):
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err, err
        assert "env._target_='os.mkdir' is not an rlrun class" in err and "trust_config=true" in err
    assert not sentinel.exists() and _digest(finished_run) == before


def test_only_targets_defined_in_rlrun_pass_unless_trusted(trust_reset):
    from rlrun.trust import check_targets

    check_targets({"env": {"_target_": "rlrun.envs.reach.ReachEnv"},
                   "agent": {"nets": [{"_target_": "rlrun.agents.ddpg.DDPG"}]}}, "cfg")
    for target in ("os.system", "rlrun.checkpoint.os.system", "rlrun.checkpoint.__builtins__", "rlrunx.evil",
                   "rlrun.no_such_module.X", "${oc.env:EVIL}"):
        with pytest.raises(ConfigError, match="is not an rlrun class"):
            check_targets({"agent": {"nets": [{"_target_": target}]}}, "cfg")
    trust_reset("mypkg.,other.mod.")
    check_targets({"env": {"_target_": "mypkg.envs.MyEnv"}}, "cfg")
    with pytest.raises(ConfigError, match="agent._target_='os.system'"):
        check_targets({"agent": {"_target_": "os.system"}}, "cfg")
    trust_reset("true")
    check_targets({"agent": {"_target_": "os.system"}}, "cfg")


# ---- 6. your own configs: hydra.searchpath and --config-dir ----------------------------------------------

@pytest.fixture
def config_dir(tmp_path) -> Path:
    (tmp_path / "mine" / "env").mkdir(parents=True)
    (tmp_path / "mine" / "env" / "myreach.yaml").write_text(
        "_target_: rlrun.envs.reach.ReachEnv\ndim: 3\nmax_steps: 10\n")
    (tmp_path / "mine" / "env" / "broken.yaml").write_text("_target_: rlrun.envs.reach.ReachEnv\ndim: [3\n  x: 1\n")
    return tmp_path / "mine"


def test_own_config_options_are_found_and_prevalidated(config_dir):
    from rlrun.cli import prevalidate

    prevalidate([f"hydra.searchpath=[file://{config_dir}]", "env=myreach"], multirun=False)
    prevalidate(["--config-dir", str(config_dir), "env=myreach"], multirun=False)
    with pytest.raises(ConfigError, match="agent.tua is not a config key; allowed keys: actor_hidden"):
        prevalidate([f"--config-dir={config_dir}", "env=myreach", "agent.tua=1"], multirun=False)
    with pytest.raises(ConfigError, match="env.dim=-1|dim") as bad_value:
        prevalidate(["-cd", str(config_dir), "env=myreach", "env.dim=abc"], multirun=False)
    assert "\n" not in str(bad_value.value)
    with pytest.raises(ConfigError, match="broken.yaml") as syntax:
        prevalidate(["--config-dir", str(config_dir), "env=broken"], multirun=False)
    assert "\n" not in str(syntax.value)
    with pytest.raises(ConfigError, match="env=nope is not a known option; available: .*myreach"):
        prevalidate(["--config-dir", str(config_dir), "env=nope"], multirun=False)


# ---- 7. datasets that do not fit ---------------------------------------------------------------------------

def _dataset(n: int, obs_dim: int, act_dim: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"obs": rng.normal(size=(n, obs_dim)).astype(np.float32),
            "actions": rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32),
            "rewards": rng.normal(size=n).astype(np.float32),
            "next_obs": rng.normal(size=(n, obs_dim)).astype(np.float32),
            "terminated": np.zeros(n, dtype=bool)}


@pytest.mark.parametrize(("defect", "expected"), [
    ("obs_dim", "obs rows have 3 values, the env needs 2"),
    ("action_dim", "actions rows have 3 values, the env needs 2"),
    ("lengths", "has arrays of different lengths: obs 50, actions 50, rewards 49"),
    ("missing", "lacks terminated; a dataset holds"),
    ("empty", "has no transitions"),
    ("truncated", "is not a readable .npz dataset"),
])
def test_datasets_that_do_not_fit_are_one_line(tmp_path, defect, expected):
    data = _dataset(0 if defect == "empty" else 50, 3 if defect == "obs_dim" else 2,
                    3 if defect == "action_dim" else 2)
    if defect == "lengths":
        data["rewards"] = data["rewards"][:-1]
    if defect == "missing":
        del data["terminated"]
    path = tmp_path / "data.npz"
    np.savez_compressed(path, **data)
    if defect == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    cfg = compose(["env=reach", "env.dim=2", "agent=cql", f"dataset={path}", "total_steps=10", "progress=false"])
    with pytest.raises(ConfigError, match="dataset=") as err:
        Trainer(cfg, tmp_path / "run")
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()
    good = _dataset(50, 2, 2)
    np.savez_compressed(path, **good)
    Trainer(cfg, tmp_path / "run").close()  # the same config with a fitting dataset builds


# ---- 7. eval: a checkpoint of another run, a read-only run dir -----------------------------------------------

def test_eval_with_a_foreign_checkpoint_or_read_only_dir_is_one_line(tmp_path, monkeypatch, capsys, finished_run):
    from rlrun.cli import main

    other = tmp_path / "other"
    Trainer(compose([*TINY, "env.dim=3", "total_steps=30", "eval_every=0", "baseline=null"]), other).run()
    monkeypatch.chdir(tmp_path)
    before = _digest(finished_run)
    assert main(["eval", f"run={finished_run}", f"checkpoint={other / 'checkpoints' / 'last.pt'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: checkpoint ") and "does not fit this run's DDPG agent" in err and "\n" not in err
    assert _digest(finished_run) == before

    write_text = Path.write_text

    def read_only(self, *args, **kwargs):
        if self.name.startswith("eval_"):
            raise PermissionError(13, "Permission denied")
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", read_only)
    assert main(["eval", f"run={finished_run}", "episodes=1"]) == 2
    out, err = capsys.readouterr()
    assert "over 1 episodes" in out  # the result is printed before the write fails
    assert err.strip().startswith("error: cannot write ") and "Permission denied" in err and "\n" not in err.strip()


def test_resume_overrides_are_typed_and_checked(tmp_path, monkeypatch, capsys, finished_run):
    from rlrun.cli import main

    monkeypatch.chdir(tmp_path)
    before = _digest(finished_run)
    for override, expected in (("total_steps=abc", "total_steps='abc'"),
                               ("agent.tua=1", "agent.tua is not a config key of this run"),
                               ("agent.gamma=5", "agent.gamma must be in (0, 1]")):
        assert main(["train", f"resume={finished_run}", override]) == 2, override
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and expected in err and "\n" not in err, err
    assert _digest(finished_run) == before


def test_a_full_disk_mid_run_stops_with_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    from rlrun.checkpoint import load_checkpoint

    run = tmp_path / "run"
    trainer = Trainer(compose([*TINY, "total_steps=100", "eval_every=0", "checkpoint_every=50"]), run)
    save, calls = torch.save, []

    def second_save_hits_a_full_disk(obj, f):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        save(obj, f)

    monkeypatch.setattr(torch, "save", second_save_hits_a_full_disk)
    with pytest.raises(CheckpointError, match="No space left on device.*previous checkpoint is intact"):
        trainer.run()
    monkeypatch.undo()
    assert load_checkpoint(run / "checkpoints" / "last.pt")["trainer"]["step"] == 50
    assert not list(run.rglob("*.tmp")) and not (run / LOCK_NAME).exists()
