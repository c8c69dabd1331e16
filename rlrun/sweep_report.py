"""Sweep summaries: one row per job with its overrides and final eval return, written as CSV and printed."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from rlrun.errors import ConfigError


def collect_jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for job in sorted((p for p in sweep_dir.iterdir() if p.is_dir() and (p / ".hydra").is_dir()),
                      key=lambda p: int(p.name) if p.name.isdigit() else p.name):
        overrides = OmegaConf.load(job / ".hydra" / "overrides.yaml")
        result_path = job / "eval.json"
        result = json.loads(result_path.read_text()) if result_path.is_file() else {"status": "missing"}
        final = result.get("final", {})
        rows.append({
            "job": job.name,
            "overrides": " ".join(str(o) for o in overrides),
            "status": result.get("status", "?"),
            "return_mean": final.get("return_mean"),
            "return_std": final.get("return_std"),
            "error": result.get("error", ""),
        })
    return rows


def summarise(sweep_dir: Path) -> list[dict[str, Any]]:
    sweep_dir = Path(sweep_dir)
    rows = collect_jobs(sweep_dir)
    with (sweep_dir / "summary.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, ["job", "overrides", "status", "return_mean", "return_std", "error"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"\nsweep summary ({sweep_dir}):")
    print(f"{'job':>4}  {'status':<9} {'return':>18}  overrides")
    for r in rows:
        ret = f"{r['return_mean']:.3f} ± {r['return_std']:.3f}" if r["return_mean"] is not None else "-"
        print(f"{r['job']:>4}  {r['status']:<9} {ret:>18}  {r['overrides']}" + (f"  [{r['error']}]" if r["error"] else ""))
    print(f"wrote {sweep_dir / 'summary.csv'}")
    return rows


def report_command(args: list[str]) -> int:
    from rlrun.evaluate import parse_keyvalues

    kv = parse_keyvalues(args, {"sweep": "sweep directory"})
    if "sweep" not in kv or not Path(kv["sweep"]).is_dir():
        raise ConfigError("rlrun report needs sweep=<existing sweep directory>")
    summarise(Path(kv["sweep"]))
    return 0
