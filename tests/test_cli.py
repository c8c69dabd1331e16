"""The real CLI in a subprocess: artifacts of a run, eval, sweep, and one-line errors that touch nothing."""

import hashlib
import json
from pathlib import Path

import pytest

from conftest import run_cli

TINY = ["env=reach", "env.dim=2", "env.max_steps=20", "env.step_scale=0.3", "agent.actor_hidden=[16]",
        "agent.critic_hidden=[16]", "agent.critic_arch=concat", "replay.capacity=5000", "agent.batch_size=16",
        "total_steps=300", "learning_starts=100", "eval_every=150", "eval_episodes=2", "checkpoint_every=150"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("cli")
    proc = run_cli(["train", *TINY], cwd, check=True)
    runs = list((cwd / "outputs" / "train" / "reach-ddpg").iterdir())
    assert len(runs) == 1
    assert "final eval: return" in proc.stdout + proc.stderr
    return runs[0]


def test_train_writes_every_artifact(trained_run):
    run = trained_run
    assert (run / ".hydra" / "config.yaml").is_file() and (run / ".hydra" / "overrides.yaml").is_file()
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert (run / "checkpoints" / "last.pt").is_file() and (run / "checkpoints" / "best.pt").is_file()
    rows = (run / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert header[:6] == ["step", "kind", "episode", "return", "length", "return_std"] and "distance" in header
    kinds = [r.split(",")[1] for r in rows[1:]]
    summary = json.loads((run / "eval.json").read_text())
    # every finished episode (>= 300 steps / 20-step limit) and the evaluations at steps 150 and 300
    assert kinds.count("train") == summary["episodes"] >= 15 and kinds.count("eval") == 2
    assert summary["status"] == "finished" and summary["step"] == 300
    assert summary["final"]["episodes"] == 2 and "distance" in summary["final"]["metrics"]
    base = summary["final"]["baseline"]  # the static baseline on the same evaluation seeds
    assert base["agent"] == "static"
    assert base["improvement"] == pytest.approx(summary["final"]["return_mean"] - base["return_mean"])


def test_tensorboard_has_the_documented_tags(trained_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for f in (trained_run / "tb").glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(f))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    assert {"train/episode_return", "train/episode_length", "eval/return_mean", "eval/return_std",
            "env/distance"} <= tags


def test_eval_loads_the_run_and_reports(trained_run):
    proc = run_cli(["eval", f"run={trained_run}", "episodes=3", "checkpoint=last"], trained_run, check=True)
    assert "return" in proc.stdout and "over 3 episodes" in proc.stdout
    result = json.loads((trained_run / "eval_last_seed1000000_n3.json").read_text())
    assert len(result["returns"]) == 3 and result["step"] == 300


def _digest(run: Path) -> dict[str, str]:
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["train", "agent=nope"], "agent=nope is not a known option; available: "),
        (["train", "agent.tua=0.1"], "agent.tua is not a config key; allowed keys: "),
        (["train", "agent.actor_lr=abc"], "agent.actor_lr='abc' has the wrong type; expected float"),
        (["train", "total_steps=0"], "total_steps must be >= 1"),
        (["train", "env=gym", "env.id=CartPole-v1", "total_steps=10"], "cannot drive action space Discrete(2)"),
        (["eval", "run=does/not/exist"], "does not exist"),
        (["train", "resume=does/not/exist"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tmp_path, args, expected):
    proc = run_cli(args, tmp_path)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and expected in lines[0]
    assert "Traceback" not in proc.stderr


def test_checkpoint_errors_leave_the_run_untouched(trained_run, tmp_path):
    before = _digest(trained_run)
    empty = tmp_path / "empty_run"
    (empty / ".hydra").mkdir(parents=True)
    (empty / ".hydra" / "config.yaml").write_text((trained_run / ".hydra" / "config.yaml").read_text())
    proc = run_cli(["eval", f"run={empty}"], tmp_path)
    assert proc.returncode != 0 and "has no checkpoints" in proc.stderr
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes((trained_run / "checkpoints" / "last.pt").read_bytes()[:500])
    proc = run_cli(["eval", f"run={trained_run}", f"checkpoint={corrupt}"], tmp_path)
    assert proc.returncode != 0 and "corrupt" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert _digest(trained_run) == before


def test_help_lists_commands_and_groups(tmp_path):
    proc = run_cli(["--help"], tmp_path, check=True)
    for word in ("train", "eval", "sweep", "env ", "agent ", "replay ", "ddpg", "td3", "reach", "gym"):
        assert word in proc.stdout
    proc = run_cli(["train", "--cfg", "job", "env=reach"], tmp_path, check=True)
    assert "_target_: rlrun.envs.reach.ReachEnv" in proc.stdout


def test_sweep_runs_each_job_and_writes_a_summary(tmp_path):
    args = [a for a in TINY if not a.startswith(("total_steps", "eval_every", "checkpoint_every"))]
    proc = run_cli(["sweep", *args, "total_steps=120", "eval_every=0", "checkpoint_every=0", "seed=0,1",
                    "hydra.sweep.dir=outputs/sweep/test"], tmp_path, check=True)
    sweep = tmp_path / "outputs" / "sweep" / "test"
    assert (sweep / "0" / "eval.json").is_file() and (sweep / "1" / "eval.json").is_file()
    summary = (sweep / "summary.csv").read_text().splitlines()
    assert len(summary) == 3 and "seed=0" in summary[1] and "seed=1" in summary[2]
    assert "sweep summary" in proc.stdout
