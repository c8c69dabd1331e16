"""`rlrun sweep` end to end in a subprocess: jobs in parallel through the joblib launcher with a diverging
job among them, the submitit path, an Optuna study; each leaves its run dirs and the sweep report."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import run_cli
from rlrun.commands.report import report_command
from rlrun.sweep import usable_cores

TINY = ["env=reach", "env.dim=2", "env.max_steps=20", "env.step_scale=0.3", "agent.actor_hidden=[16]",
        "agent.critic_hidden=[16]", "agent.critic_arch=concat", "replay.capacity=2000", "agent.batch_size=16",
        "total_steps=100", "learning_starts=40", "eval_every=50", "eval_episodes=2", "checkpoint_every=0",
        "plots=false"]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _hparams(job: Path) -> dict[str, float | str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    acc = EventAccumulator(str(job / "tb"))
    acc.Reload()
    start = metadata.parse_session_start_info_plugin_data(
        acc.PluginTagToContent("hparams")[metadata.SESSION_START_INFO_TAG])
    return {k: v.number_value if v.HasField("number_value") else v.string_value
            for k, v in start.hparams.items()}


def test_joblib_sweep_runs_jobs_in_parallel_and_survives_a_diverging_job(tmp_path, monkeypatch, capsys):
    proc = run_cli(["sweep", *TINY, "seed=0,1", "agent.gamma=0.99,nan", "hydra.sweep.dir=outputs/sweep/s"],
                   tmp_path)
    assert proc.returncode == 1, proc.stderr  # a sweep with failed jobs fails
    sweep = tmp_path / "outputs" / "sweep" / "s"
    jobs = [sweep / str(i) for i in range(4)]
    results = [json.loads((j / "eval.json").read_text()) for j in jobs]
    # jobs are numbered seed-major: (0, 0.99), (0, nan), (1, 0.99), (1, nan)
    assert [r["status"] for r in results] == ["finished", "failed"] * 2
    assert all("agent.gamma=nan is not a number" in r["error"] for r in results[1::2])
    assert all((j / "metrics.csv").is_file() and (j / "checkpoints" / "last.pt").is_file() for j in jobs[::2])
    assert "Traceback" in (jobs[1] / "train.log").read_text()  # the failed job's log keeps its traceback

    hydra_cfg = yaml.safe_load((jobs[0] / ".hydra" / "hydra.yaml").read_text())["hydra"]
    assert hydra_cfg["launcher"]["_target_"].endswith("JoblibLauncher")
    assert hydra_cfg["launcher"]["n_jobs"] == usable_cores()
    config = yaml.safe_load((jobs[0] / ".hydra" / "config.yaml").read_text())
    assert config["torch_threads"] == 1 and config["progress"] is False
    # Ran side by side: some job started before another one finished.
    spans = sorted(((j / ".hydra" / "config.yaml").stat().st_mtime, (j / "eval.json").stat().st_mtime)
                   for j in jobs)
    assert any(spans[i + 1][0] < spans[i][1] for i in range(len(spans) - 1))

    per_job = _rows(sweep / "summary.csv")
    assert [(r["job"], r["seed"], r["agent.gamma"], r["status"]) for r in per_job] == [
        ("0", "0", "0.99", "finished"), ("1", "0", "nan", "failed"), ("2", "1", "0.99", "finished"),
        ("3", "1", "nan", "failed")]
    grouped = _rows(sweep / "summary_grouped.csv")
    assert [(g["config"], g["n"], g["n_failed"]) for g in grouped] == [
        ("agent.gamma=0.99", "2", "0"), ("agent.gamma=nan", "0", "2")]
    finals = [r["final"]["return_mean"] for r in results[::2]]
    assert float(grouped[0]["return_mean"]) == sum(finals) / 2
    assert float(grouped[0]["ci95_low"]) == min(finals) and float(grouped[0]["ci95_high"]) == max(finals)
    assert "| 1 | agent.gamma=0.99 | 2 |" in proc.stdout and "job 1 (failed)" in proc.stdout
    assert (sweep / "learning_curves.png").is_file() and (sweep / "return_vs_agent.gamma.png").is_file()

    # HParams across the sweep: each finished job's session has its own swept values.
    hp = [_hparams(j) for j in jobs[::2]]
    assert [(h["seed"], h["agent.gamma"]) for h in hp] == [(0.0, 0.99), (1.0, 0.99)]

    # `rlrun report` on the finished sweep writes and prints the same table.
    before = {n: (sweep / n).read_bytes() for n in ("summary.csv", "summary_grouped.csv", "report.md")}
    monkeypatch.chdir(tmp_path)
    assert report_command(["sweep=outputs/sweep/s"]) == 0
    assert {n: (sweep / n).read_bytes() for n in before} == before

    def table(out: str) -> list[str]:
        return [ln for ln in out.splitlines() if ln.startswith(("| ", "- job", "4 jobs"))]

    assert table(capsys.readouterr().out) == table(proc.stdout) and len(table(proc.stdout)) == 6


def test_submitit_local_sweep(tmp_path):
    run_cli(["sweep", *TINY, "seed=0,1", "hydra/launcher=submitit_local",
             "hydra.sweep.dir=outputs/sweep/sub"], tmp_path, check=True)
    sweep = tmp_path / "outputs" / "sweep" / "sub"
    statuses = [json.loads((sweep / str(i) / "eval.json").read_text())["status"] for i in range(2)]
    assert statuses == ["finished"] * 2
    hydra_cfg = yaml.safe_load((sweep / "0" / ".hydra" / "hydra.yaml").read_text())["hydra"]
    assert hydra_cfg["launcher"]["_target_"].endswith("submitit_launcher.LocalLauncher")
    assert len(list((sweep / ".submitit").glob("*/*_result.pkl"))) == 2  # each job ran in its own process
    assert [r["seed"] for r in _rows(sweep / "summary.csv")] == ["0", "1"]


def test_optuna_study_reports_its_best_trial_and_survives_failed_trials(tmp_path):
    import optuna

    # gamma=nan is refused by the job: those trials must be failed trials, not the end of the study.
    proc = run_cli(["sweep", *TINY, "hydra/sweeper=optuna", "hydra/launcher=basic",
                    "hydra.sweeper.n_trials=3", "agent.actor_lr=tag(log,interval(1e-4,1e-2))",
                    "agent.gamma=choice(0.99,nan)", "hydra.sweep.dir=outputs/sweep/opt"], tmp_path)
    assert proc.returncode == 1, proc.stderr
    sweep = tmp_path / "outputs" / "sweep" / "opt"
    results = [json.loads((sweep / str(i) / "eval.json").read_text()) for i in range(3)]
    rows = _rows(sweep / "summary.csv")
    lrs = [float(r["agent.actor_lr"]) for r in rows]
    assert len(set(lrs)) == 3 and all(1e-4 <= lr <= 1e-2 for lr in lrs)
    ok = [i for i, r in enumerate(results) if r["status"] == "finished"]
    assert 0 < len(ok) < 3 and all(rows[i]["agent.gamma"] == "0.99" for i in ok)
    study = optuna.load_study(study_name="rlrun", storage=f"sqlite:///{sweep}/optuna.db")
    assert [t.state.name for t in study.trials] == ["COMPLETE" if i in ok else "FAIL" for i in range(3)]
    returns = {i: results[i]["validation"]["return_mean"] for i in ok}  # the objective: never the test split
    best = max(returns, key=returns.get)  # direction: maximize the return
    assert study.best_value == returns[best]
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert result["best_value"] == returns[best] and result["best_params"]["agent.actor_lr"] == lrs[best]
    assert f"Optuna best trial (job {best}): validation return {returns[best]:.3f}" in proc.stdout
    assert _rows(sweep / "summary_grouped.csv")[0]["jobs"] == str(best)  # best first


def test_ray_launcher_without_ray_is_one_line_naming_the_extra(tmp_path):
    """As if Ray were not installed: one line from rlrun, exit 2, no sweep directory."""
    hide_ray = ("import importlib.util as u, sys; f = u.find_spec; "
                "u.find_spec = lambda n, *a: None if n == 'ray' else f(n, *a); "
                "from rlrun.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", hide_ray, "sweep", "hydra/launcher=ray", *TINY, "seed=0,1",
                           "hydra.sweep.dir=sweep"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: hydra/launcher=ray needs Ray: pip install 'rlrun[ray]'"
    assert not (tmp_path / "sweep").exists()
