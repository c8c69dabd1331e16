"""Sweep reports: what a sweep found, written into the sweep directory after every sweep and by
`rlrun report sweep=<dir>` (same files, same numbers: the bootstrap is seeded).

    summary.csv          one row per job: its overrides, status, final eval return, the env's metrics, error
    summary_grouped.csv  one row per configuration (the swept values except the seed), best first:
                         n, mean ± std over seeds, 95% bootstrap confidence interval of the mean, metric means
    report.md            both tables in markdown, the failed jobs with their errors, the Optuna best trial
    return_vs_<key>.png  final eval return of every job vs each swept hyperparameter, mean ± std per value
    learning_curves.png  eval return vs step per configuration (mean over seeds, ± std band)

A job's facts come from its run directory: .hydra/overrides.yaml (what the sweep set), eval.json (written by
the trainer when the job finishes, or by the task function with status "failed" and the error) and
metrics.csv (learning curve). TensorBoard's HParams view needs no extra file: each job logged its hparams and
final metrics into <job>/tb, so `tensorboard --logdir <sweep dir>` compares the jobs.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

SEED_KEYS = ("seed",)      # swept keys that repeat a configuration rather than define one
TABLE_METRICS = 4          # env metrics shown in the printed/markdown tables (the CSVs hold all)
CURVES_MAX = 10            # configurations drawn in learning_curves.png (the best ones)
BOOTSTRAP_RESAMPLES = 10_000


@dataclass
class Job:
    name: str
    path: Path
    overrides: dict[str, str]
    status: str
    return_mean: float = math.nan
    return_std: float = math.nan
    metrics: dict[str, float] = field(default_factory=dict)
    step: int | None = None
    seconds: float | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "finished" and math.isfinite(self.return_mean)


@dataclass
class Group:
    """The jobs of one configuration (same swept values, different seeds)."""

    config: str
    params: dict[str, str]
    jobs: list[Job]
    mean: float = math.nan
    std: float = math.nan
    ci: tuple[float, float] = (math.nan, math.nan)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return sum(j.ok for j in self.jobs)

    @property
    def n_failed(self) -> int:
        return len(self.jobs) - self.n


# ---- reading a sweep ---------------------------------------------------------------------------------

def _job_order(p: Path) -> tuple[int, int | str]:
    return (0, int(p.name)) if p.name.isdigit() else (1, p.name)


def job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted((p for p in Path(sweep_dir).iterdir() if p.is_dir() and (p / ".hydra").is_dir()),
                  key=_job_order)


def parse_overrides(lines: list[str]) -> dict[str, str]:
    """`key=value` overrides (also `+key=`, `++key=`, group choices such as `agent=sac`) as a dict."""
    out = {}
    for line in lines:
        key, sep, value = str(line).lstrip("+~").partition("=")
        if sep:
            out[key] = value
    return out


def _number(v: Any) -> float:
    try:
        return float(v) if v is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def load_job(path: Path) -> Job:
    overrides_file = path / ".hydra" / "overrides.yaml"
    overrides = parse_overrides(list(OmegaConf.load(overrides_file))) if overrides_file.is_file() else {}
    result_path = path / "eval.json"
    if not result_path.is_file():
        # No result: interrupted (SIGTERM/Ctrl-C; it left a checkpoint to resume from) or killed/running.
        status = "interrupted" if (path / "checkpoints" / "last.pt").is_file() else "missing"
        return Job(path.name, path, overrides, status)
    result = json.loads(result_path.read_text())
    final = result.get("final") or {}
    metrics = {k: _number(v) for k, v in (final.get("metrics") or {}).items()}
    return Job(path.name, path, overrides, str(result.get("status", "?")),
               return_mean=_number(final.get("return_mean")), return_std=_number(final.get("return_std")),
               metrics=metrics, step=result.get("step"), seconds=result.get("train_seconds"),
               error=" ".join(str(result.get("error", "")).split()))


def collect_jobs(sweep_dir: Path) -> list[Job]:
    return [load_job(p) for p in job_dirs(sweep_dir)]


def swept_keys(jobs: list[Job]) -> list[str]:
    """Override keys whose value differs between jobs (or that only some jobs set), in command-line order."""
    keys: list[str] = []
    for j in jobs:
        keys += [k for k in j.overrides if k not in keys]
    return [k for k in keys if len({j.overrides.get(k) for j in jobs}) > 1]


# ---- statistics --------------------------------------------------------------------------------------

def bootstrap_ci(values: np.ndarray, level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean (nan for fewer than 2 values). Seeded, so a
    report written again gives the same interval."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    lo, hi = np.percentile(means, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(lo), float(hi)


def group_jobs(jobs: list[Job], keys: list[str] | None = None) -> list[Group]:
    """One group per configuration (the swept values except the seed), best mean return first; groups
    without a finished job last."""
    keys = swept_keys(jobs) if keys is None else keys
    config_keys = [k for k in keys if k not in SEED_KEYS]
    groups: dict[str, Group] = {}
    for j in jobs:
        params = {k: j.overrides.get(k, "") for k in config_keys}
        label = " ".join(f"{k}={v}" for k, v in params.items()) or "all jobs"
        groups.setdefault(label, Group(label, params, [])).jobs.append(j)
    for g in groups.values():
        ok = [j for j in g.jobs if j.ok]
        returns = np.array([j.return_mean for j in ok])
        if len(returns):
            g.mean = float(returns.mean())
            g.std = float(returns.std(ddof=1)) if len(returns) > 1 else math.nan
            g.ci = bootstrap_ci(returns)
        names = []
        for j in ok:
            names += [k for k in j.metrics if k not in names]
        for k in names:
            vals = [j.metrics[k] for j in ok if math.isfinite(j.metrics.get(k, math.nan))]
            g.metrics[k] = float(np.mean(vals)) if vals else math.nan
    return sorted(groups.values(), key=lambda g: (math.isnan(g.mean), 0.0 if math.isnan(g.mean) else -g.mean))


# ---- tables ------------------------------------------------------------------------------------------

def _fmt(x: Any, spec: str = ".4g") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return format(x, spec) if isinstance(x, int | float) else str(x)


def _csv_value(x: Any) -> Any:
    return "" if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


def _metric_names(jobs: list[Job]) -> list[str]:
    names: list[str] = []
    for j in jobs:
        names += [k for k in j.metrics if k not in names]
    return names


def write_job_csv(path: Path, jobs: list[Job], keys: list[str]) -> None:
    metrics = _metric_names(jobs)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["job", "overrides", "status", "return_mean", "return_std", *keys, *metrics, "step",
                    "train_seconds", "error"])
        for j in jobs:
            overrides = " ".join(f"{k}={v}" for k, v in j.overrides.items())
            w.writerow([j.name, overrides, j.status, _csv_value(j.return_mean), _csv_value(j.return_std),
                        *(j.overrides.get(k, "") for k in keys),
                        *(_csv_value(j.metrics.get(k)) for k in metrics), _csv_value(j.step),
                        _csv_value(j.seconds), j.error])


def write_group_csv(path: Path, groups: list[Group]) -> None:
    params = list(groups[0].params) if groups else []
    metrics: list[str] = []
    for g in groups:
        metrics += [k for k in g.metrics if k not in metrics]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["rank", "config", *params, "n", "n_failed", "return_mean", "return_std", "ci95_low",
                    "ci95_high", *metrics, "jobs"])
        for rank, g in enumerate(groups, 1):
            w.writerow([rank, g.config, *(g.params[k] for k in params), g.n, g.n_failed, _csv_value(g.mean),
                        _csv_value(g.std), _csv_value(g.ci[0]), _csv_value(g.ci[1]),
                        *(_csv_value(g.metrics.get(k)) for k in metrics), " ".join(j.name for j in g.jobs)])


def _markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def group_table(groups: list[Group]) -> list[str]:
    metrics: list[str] = []
    for g in groups:
        metrics += [k for k in g.metrics if k not in metrics]
    metrics = metrics[:TABLE_METRICS]
    rows = []
    for rank, g in enumerate(groups, 1):
        ret = _fmt(g.mean, ".3f") + (f" ± {g.std:.3f}" if math.isfinite(g.std) else "")
        ci = f"[{g.ci[0]:.3f}, {g.ci[1]:.3f}]" if math.isfinite(g.ci[0]) else "-"
        n = f"{g.n}" + (f" (+{g.n_failed} failed)" if g.n_failed else "")
        rows.append([str(rank), g.config, n, ret, ci, *(_fmt(g.metrics.get(k)) for k in metrics)])
    return _markdown(["#", "config", "n", "return mean ± std", "95% CI", *metrics], rows)


def job_table(jobs: list[Job], keys: list[str]) -> list[str]:
    metrics = _metric_names(jobs)[:TABLE_METRICS]
    rows = [[j.name, *(j.overrides.get(k, "") for k in keys), j.status,
             _fmt(j.return_mean, ".3f") + (f" ± {j.return_std:.3f}" if math.isfinite(j.return_std) else ""),
             *(_fmt(j.metrics.get(k)) for k in metrics)] for j in jobs]
    return _markdown(["job", *keys, "status", "return", *metrics], rows)


def optuna_best(sweep_dir: Path, jobs: list[Job]) -> str | None:
    """The Optuna sweeper's best trial (optimization_results.yaml) and the job that ran it."""
    path = Path(sweep_dir) / "optimization_results.yaml"
    if not path.is_file():
        return None
    res = OmegaConf.to_container(OmegaConf.load(path))
    if "best_params" not in res:
        return None
    params = {str(k): v for k, v in res["best_params"].items()}

    def same(a: Any, b: str) -> bool:
        fa, fb = _number(a), _number(b)
        return math.isclose(fa, fb, rel_tol=1e-9) if math.isfinite(fa) and math.isfinite(fb) else str(a) == b

    match = [j.name for j in jobs
             if all(k in j.overrides and same(v, j.overrides[k]) for k, v in params.items())]
    where = f" (job {', '.join(match)})" if match else ""
    shown = " ".join(f"{k}={v}" for k, v in params.items())
    value = _fmt(_number(res.get("best_value")), ".3f")
    return f"Optuna best trial{where}: validation return {value} with {shown}"


# ---- plots -------------------------------------------------------------------------------------------

def _figure(width: float = 6.4, height: float = 4.2):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(111)


def _filename(key: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in key)


def plot_return_vs(sweep_dir: Path, jobs: list[Job], key: str) -> Path | None:
    ok = [j for j in jobs if j.ok]
    if not ok:
        return None
    xs_text = [j.overrides.get(key, "") for j in ok]
    y = np.array([j.return_mean for j in ok])
    numeric = np.array([_number(x) for x in xs_text])
    fig, ax = _figure()
    if np.all(np.isfinite(numeric)):
        x = numeric
        values = np.unique(x)
        if np.all(values > 0) and values.max() / values.min() >= 10:
            ax.set_xscale("log")
    else:  # categorical (agent=sac,td3 or strings): positions in order of appearance
        cats = list(dict.fromkeys(xs_text))
        x = np.array([cats.index(t) for t in xs_text], dtype=float)
        values = np.arange(len(cats), dtype=float)
        ax.set_xticks(values, cats, rotation=20 if len(cats) > 4 else 0)
    ax.scatter(x, y, s=18, alpha=0.5, color="#4c72b0", label="job")
    means = np.array([y[x == v].mean() for v in values])
    stds = np.array([y[x == v].std(ddof=1) if (x == v).sum() > 1 else 0.0 for v in values])
    ax.errorbar(values, means, yerr=stds, color="#dd8452", marker="o", capsize=3, label="mean ± std")
    ax.set_xlabel(key)
    ax.set_ylabel("final mean eval return")
    ax.set_title(f"eval return vs {key}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    out = Path(sweep_dir) / f"return_vs_{_filename(key)}.png"
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    return out


def _curve(job: Job, source: str) -> tuple[np.ndarray, np.ndarray] | None:
    from rlrun.plots import read_metrics

    path = job.path / "metrics.csv"
    if not path.is_file():
        return None
    train, ev = read_metrics(path)
    cols = ev if source == "eval" else train
    if "step" not in cols or len(cols["step"]) == 0:
        return None
    step, ret = cols["step"], cols["return"]
    keep = np.isfinite(step) & np.isfinite(ret)
    step, ret = step[keep], ret[keep]
    if source == "train" and len(ret) > 1:  # episode returns are noisy: rolling mean over ~10% of them
        w = max(1, len(ret) // 10)
        ret = np.convolve(np.concatenate([np.full(w - 1, ret[0]), ret]), np.ones(w) / w, mode="valid")
    return (step, ret) if len(step) else None


def plot_learning_curves(sweep_dir: Path, groups: list[Group]) -> Path | None:
    """Mean eval return vs step per configuration (± std over seeds); training episode returns when the
    jobs evaluated only once (eval_every=0)."""
    shown = [g for g in groups if g.n][:CURVES_MAX]
    if not shown:
        return None
    ok_jobs = [j for g in shown for j in g.jobs if j.ok]
    evals = [_curve(j, "eval") for j in ok_jobs]
    source = "eval" if all(c is not None and len(c[0]) >= 2 for c in evals) else "train"
    fig, ax = _figure(7.5, 4.5)
    drawn = 0
    for g in shown:
        curves = [c for c in (_curve(j, source) for j in g.jobs if j.ok) if c is not None]
        if not curves:
            continue
        lo = min(c[0][0] for c in curves)
        hi = max(c[0][-1] for c in curves)
        if source == "eval":  # every job evaluates at the same steps
            grid = np.unique(np.concatenate([c[0] for c in curves]))
        else:
            grid = np.linspace(lo, hi, 60)
        stack = np.array([np.where((grid >= s[0]) & (grid <= s[-1]), np.interp(grid, s, r), np.nan)
                          for s, r in curves])
        with np.errstate(all="ignore"):
            mean = np.nanmean(stack, axis=0)
            std = np.nanstd(stack, axis=0)
        line, = ax.plot(grid, mean, label=f"{g.config} (n={len(curves)})", lw=1.5)
        if len(curves) > 1:
            ax.fill_between(grid, mean - std, mean + std, color=line.get_color(), alpha=0.15)
        drawn += 1
    if not drawn:
        return None
    ax.set_xlabel("env step")
    ax.set_ylabel("eval return (mean over seeds)" if source == "eval"
                  else "training episode return (smoothed)")
    more = f", best {len(shown)} of {len(groups)}" if len(groups) > len(shown) else ""
    ax.set_title(f"learning curves per configuration{more}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    out = Path(sweep_dir) / "learning_curves.png"
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    return out


# ---- the report --------------------------------------------------------------------------------------

def summarise(sweep_dir: Path, plots: bool = True) -> list[dict[str, Any]]:
    """Write the sweep's report files, print the configurations best first, return one dict per job."""
    sweep_dir = Path(sweep_dir)
    jobs = collect_jobs(sweep_dir)
    print(f"\nsweep summary ({sweep_dir}):")
    if not jobs:
        print("no job directories (with .hydra/) yet")
        return []
    keys = swept_keys(jobs)
    groups = group_jobs(jobs, keys)
    write_job_csv(sweep_dir / "summary.csv", jobs, keys)
    write_group_csv(sweep_dir / "summary_grouped.csv", groups)
    failed = [j for j in jobs if not j.ok]
    best = optuna_best(sweep_dir, jobs)
    pngs: list[Path] = []
    if plots:
        for key in keys:
            if key not in SEED_KEYS and (png := plot_return_vs(sweep_dir, jobs, key)) is not None:
                pngs.append(png)
        if (png := plot_learning_curves(sweep_dir, groups)) is not None:
            pngs.append(png)

    head = [f"{len(jobs)} jobs, {len(jobs) - len(failed)} finished, {len(failed)} failed or unfinished; "
            f"swept: {', '.join(keys) or '-'}"]
    grouped = ["", "configurations, best first (mean ± std over seeds, 95% bootstrap CI of the mean):", "",
               *group_table(groups)]
    failures = ["", "failed or unfinished jobs:"]
    for j in failed:
        shown = " ".join(f"{k}={j.overrides.get(k, '')}" for k in keys) or "(no swept values)"
        failures.append(f"- job {j.name} ({j.status}) {shown}" + (f": {j.error}" if j.error else ""))
    tail = [""] * bool(best) + [best] * bool(best)
    md = [f"# Sweep report: {sweep_dir}", "", *head, *grouped, "", "## Jobs", "", *job_table(jobs, keys)]
    md += failures * bool(failed) + tail
    md += ["", "## Plots", "", *(f"![{p.stem}]({p.name})" for p in pngs)] * bool(pngs)
    md += ["", f"TensorBoard (HParams tab compares the jobs): `tensorboard --logdir {sweep_dir}`"]
    (sweep_dir / "report.md").write_text("\n".join(md) + "\n")

    for line in [*head, *grouped, *(failures * bool(failed)), *tail]:
        print(line)
    print(f"\nwrote {sweep_dir / 'summary.csv'}, summary_grouped.csv, report.md"
          + (f" and {len(pngs)} plots" if pngs else ""))
    print(f"compare the jobs in TensorBoard: tensorboard --logdir {sweep_dir}")
    return [{"job": j.name, "overrides": j.overrides, "status": j.status, "return_mean": j.return_mean,
             "return_std": j.return_std, "metrics": j.metrics, "error": j.error} for j in jobs]
