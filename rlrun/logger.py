"""Run logging: TensorBoard scalars/HParams/custom layout, metrics.csv and the progress bar.

Tag names (one name per concept across code, config and TensorBoard):
    train/episode_return, train/episode_length, eval/return_mean, eval/return_std,
    loss/<name> (from agent.update), time/sps, env/<info key> (averaged per episode).
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

BASE_COLUMNS = ["step", "kind", "episode", "return", "length", "return_std"]

TRAIN_LAYOUT = {
    "rlrun": {
        "return": ["Multiline", ["train/episode_return", "eval/return_mean"]],
        "losses": ["Multiline", ["loss/critic", "loss/actor", "loss/q", "loss/param"]],
    }
}


class MetricsCsv:
    """One row per training episode and per evaluation. The header is fixed by the first row (base columns
    plus the env's metric keys); on resume rows past the checkpoint's step are dropped first, and so is the
    final evaluation (an eval row at `final_step` or later), which a resumed finished run writes again."""

    def __init__(self, path: Path, resume_step: int | None = None, final_step: int | None = None) -> None:
        self.path = path
        self.columns: list[str] | None = None
        if resume_step is not None and path.exists():
            with path.open(newline="") as f:
                reader = csv.DictReader(f)
                self.columns = list(reader.fieldnames or [])
                rows = [r for r in reader if int(r["step"]) <= resume_step
                        and not (r["kind"] == "eval" and final_step is not None and int(r["step"]) >= final_step)]
            with path.open("w", newline="") as f:
                writer = csv.DictWriter(f, self.columns)
                writer.writeheader()
                writer.writerows(rows)
        elif path.exists():
            path.unlink()

    def write(self, row: dict[str, Any]) -> None:
        new = self.columns is None
        if new:
            self.columns = BASE_COLUMNS + sorted(k for k in row if k not in BASE_COLUMNS)
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, self.columns, extrasaction="ignore", restval="")
            if new:
                writer.writeheader()
            writer.writerow({k: _fmt(v) for k, v in row.items()})


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v


LOG_FORMAT = "[%(asctime)s][%(levelname)s] %(message)s"  # as Hydra's handler writes train.log (conf/hydra)


def run_log(path: Path) -> logging.Logger:
    """A logger that appends to the run's train.log only: the messages are already on the console (through
    tqdm, which keeps the progress bar intact), so it must not reach the root logger's console handler."""
    logger = logging.getLogger(f"rlrun.run_log.{path.resolve()}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    if not logger.handlers:
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logger.addHandler(handler)
    return logger


class RunLogger:
    def __init__(
        self,
        run_dir: Path,
        total_steps: int,
        start_step: int = 0,
        progress: bool = True,
        resume: bool = False,
        env_layout: dict | None = None,
        final_step: int | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.tb_dir = run_dir / "tb"
        self.writer = SummaryWriter(str(self.tb_dir), purge_step=start_step if resume else None)
        if not resume:
            self.writer.add_custom_scalars({**TRAIN_LAYOUT, **(env_layout or {})})
        self.csv = MetricsCsv(run_dir / "metrics.csv", resume_step=start_step if resume else None,
                              final_step=final_step)
        self.bar = tqdm(total=total_steps, initial=start_step, disable=not progress, unit="step",
                        dynamic_ncols=True, mininterval=0.5, leave=True)
        self.log_file = run_log(run_dir / "train.log")

    def scalars(self, values: dict[str, float], step: int) -> None:
        for tag, v in values.items():
            if isinstance(v, int | float) and math.isfinite(v):
                self.writer.add_scalar(tag, v, step)

    def episode(self, step: int, episode: int, ret: float, length: int, env_metrics: dict[str, float]) -> None:
        self.scalars({"train/episode_return": ret, "train/episode_length": length}, step)
        self.scalars({f"env/{k}": v for k, v in env_metrics.items()}, step)
        self.csv.write({"step": step, "kind": "train", "episode": episode, "return": ret, "length": length,
                        **env_metrics})

    def evaluation(self, step: int, episode: int, result: dict[str, Any]) -> None:
        self.scalars({"eval/return_mean": result["return_mean"], "eval/return_std": result["return_std"],
                      "eval/length_mean": result["length_mean"]}, step)
        self.scalars({f"eval/{k}": v for k, v in result["metrics"].items()}, step)
        self.csv.write({"step": step, "kind": "eval", "episode": episode, "return": result["return_mean"],
                        "length": result["length_mean"], "return_std": result["return_std"],
                        **result["metrics"]})

    def progress(self, n: int, postfix: dict[str, str]) -> None:
        self.bar.update(n)
        self.bar.set_postfix(postfix, refresh=False)

    def message(self, text: str) -> None:
        """To the console around the progress bar, and into train.log (the console log of the run)."""
        self.bar.write(text) if not self.bar.disable else print(text, flush=True)
        self.log_file.info(text)

    def hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        clean = {k: v for k, v in hparams.items() if isinstance(v, int | float | str | bool)}
        self.writer.add_hparams(clean, metrics, run_name=".")

    def image(self, tag: str, png: Path, step: int) -> None:
        import matplotlib.image as mpimg

        img = mpimg.imread(png)
        self.writer.add_image(tag, img[..., :3], step, dataformats="HWC")

    def close(self) -> None:
        self.bar.close()
        for handler in list(self.log_file.handlers):
            handler.close()
            self.log_file.removeHandler(handler)
        self.writer.flush()
        self.writer.close()
