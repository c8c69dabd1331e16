"""The one training loop: env <-> agent <-> replay <-> logger <-> checkpoints.

Two data sources, one loop: online agents step the environment (storing transitions in replay, or updating
on each transition when `agent.uses_replay` is False); offline agents (`agent.offline`) sample a dataset
loaded into the replay buffer and use the environment only for evaluation. `step` counts env steps online
and gradient updates offline.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from rlrun.build import build_agent, build_baseline, build_env, build_replay, load_dataset
from rlrun.checkpoint import load_checkpoint, save_checkpoint
from rlrun.config import validate_run
from rlrun.errors import CheckpointError, ConfigError, TrainingDivergedError
from rlrun.evaluate import (
    InfoAverager,
    compare,
    evaluate_policy,
    format_comparison,
    format_result,
    key_metrics,
)
from rlrun.logger import RunLogger
from rlrun.replay.buffer import Batch
from rlrun.spaces import flatten_action, sample_action

log = logging.getLogger("rlrun")

LOSS_LOG_EVERY = 1000  # env steps between averaged loss scalars


@dataclass
class Progress:
    """Counters persisted in every checkpoint."""

    step: int = 0
    episode: int = 0
    episode_return: float = 0.0
    episode_length: int = 0
    best_eval: float = -math.inf
    best_step: int = -1
    recent_returns: list[float] = field(default_factory=list)


class StopRequested:
    """SIGINT/SIGTERM set a flag; the loop checkpoints and exits at the next step boundary."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequested:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. some Hydra launchers): no handler
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:  # second Ctrl-C: give up waiting
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def __bool__(self) -> bool:
        return self.signum is not None


class Trainer:
    def __init__(self, cfg: DictConfig, run_dir: Path, resume: bool = False, labels: dict[str, str] | None = None):
        validate_run(cfg)
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.labels = labels or {}
        self.resume = resume
        torch.set_num_threads(int(cfg.torch_threads))
        torch.manual_seed(int(cfg.seed))
        self.env = build_env(cfg, log_dir=self.run_dir)
        self.eval_env = build_env(cfg, log_dir=self.run_dir / "eval", evaluation=True)
        self.agent = build_agent(cfg, self.env)
        self.baseline = build_baseline(cfg, self.eval_env)
        self.key_metrics = key_metrics(self.env)
        self.offline = bool(self.agent.offline)
        self.replay = build_replay(cfg, self.env, self.agent) if (self.agent.uses_replay or self.offline) else None
        if self.offline:
            if not cfg.dataset:
                raise ConfigError(f"agent {type(self.agent).__name__} is offline: set dataset=<path to .npz>")
            self.replay.add_dataset(load_dataset(str(cfg.dataset)))
        self.rng = np.random.default_rng(int(cfg.seed) + 2)  # random actions during learning_starts
        self.progress = Progress()
        self.info_avg = InfoAverager()
        self.obs: np.ndarray | None = None
        self.last_info: dict[str, Any] = {}  # the latest step's info (its action mask guides random actions)
        self.ckpt_dir = self.run_dir / "checkpoints"
        if resume:
            self._restore(load_checkpoint(self.ckpt_dir / "last.pt"))

    # ---- checkpoints --------------------------------------------------------------------------------
    def _payload(self) -> dict[str, Any]:
        env_state = self.env.unwrapped.get_state() if hasattr(self.env.unwrapped, "get_state") else None
        return {
            "agent": self.agent.state_dict(),
            "replay": self.replay.state_dict() if self.replay is not None else None,
            "trainer": {**asdict(self.progress), "info_avg": self.info_avg.state_dict(),
                        "obs": None if self.obs is None else torch.as_tensor(self.obs)},
            "rng": {"torch": torch.get_rng_state(), "trainer": self.rng.bit_generator.state},
            "env": env_state,
        }

    def save(self, name: str) -> None:
        save_checkpoint(self.ckpt_dir / f"{name}.pt", self._payload())

    def _restore(self, ckpt: dict[str, Any]) -> None:
        try:
            self.agent.load_state_dict(ckpt["agent"])
            if self.replay is not None and ckpt["replay"] is not None and not self.offline:
                self.replay.load_state_dict(ckpt["replay"])
            t = dict(ckpt["trainer"])
            self.info_avg.load_state_dict(t.pop("info_avg"))
            obs = t.pop("obs")
            self.progress = Progress(**t)
            torch.set_rng_state(ckpt["rng"]["torch"])
            self.rng.bit_generator.state = ckpt["rng"]["trainer"]
        except (KeyError, RuntimeError, TypeError, ValueError) as e:
            raise CheckpointError(f"checkpoint does not match this run's config ({e})") from None
        if self.offline:
            return
        # Re-enter the interrupted episode exactly when the env can restore its state; otherwise start
        # a fresh, deterministically seeded episode.
        self.obs, self.last_info = self.env.reset(seed=int(self.cfg.seed) + 7919 * self.progress.episode)
        if ckpt["env"] is not None and obs is not None and hasattr(self.env.unwrapped, "set_state"):
            self.env.unwrapped.set_state(ckpt["env"])
            self.obs = obs.numpy()
        else:
            log.warning("env has no get_state/set_state: the interrupted episode restarts from a reset")
            self.progress.episode_return, self.progress.episode_length = 0.0, 0
            self.info_avg.reset()

    # ---- evaluation ---------------------------------------------------------------------------------
    def evaluate(self, logger: RunLogger) -> dict[str, Any]:
        cfg, p = self.cfg, self.progress
        result = evaluate_policy(self.eval_env, self.agent, int(cfg.eval_episodes), int(cfg.eval_seed))
        logger.evaluation(p.step, p.episode, result)
        if result["return_mean"] > p.best_eval:
            p.best_eval, p.best_step = result["return_mean"], p.step
            self.save("best")
        logger.message(format_result(f"[step {p.step}] eval", result, max_metrics=4, first=self.key_metrics))
        return result

    # ---- the loop -----------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        cfg, p = self.cfg, self.progress
        total = int(cfg.total_steps)
        logger = RunLogger(self.run_dir, total, p.step, bool(cfg.progress), self.resume,
                           getattr(self.env.unwrapped, "tensorboard_layout", None))
        if self.obs is None and not self.offline:
            self.obs, self.last_info = self.env.reset(seed=int(cfg.seed))
        losses: dict[str, list[float]] = {}
        recent = deque(p.recent_returns, maxlen=20)
        t0, step0, last_bar = time.perf_counter(), p.step, p.step
        interrupted = None
        with StopRequested() as stop:
            while p.step < total and not stop:
                if self.offline:
                    self._learn(losses)
                    p.step += 1
                else:
                    self._env_step(logger, losses, recent)
                if p.step % LOSS_LOG_EVERY == 0 and losses:
                    sps = (p.step - step0) / max(time.perf_counter() - t0, 1e-9)
                    logger.scalars({**{k: float(np.mean(v)) for k, v in losses.items()}, "time/sps": sps}, p.step)
                    losses.clear()
                if p.step - last_bar >= 100 or p.step == total:
                    sps = (p.step - step0) / max(time.perf_counter() - t0, 1e-9)
                    post = {"sps": f"{sps:.0f}"}
                    if recent:
                        post["return"] = f"{np.mean(recent):.3g}"
                    logger.progress(p.step - last_bar, post)
                    last_bar = p.step
                if cfg.eval_every and p.step % int(cfg.eval_every) == 0 and p.step < total:
                    self.evaluate(logger)
                if cfg.checkpoint_every and p.step % int(cfg.checkpoint_every) == 0:
                    p.recent_returns = list(recent)
                    self.save("last")
            interrupted = stop.signum
        if losses:
            logger.scalars({k: float(np.mean(v)) for k, v in losses.items()}, p.step)
        p.recent_returns = list(recent)
        elapsed = time.perf_counter() - t0
        self.save("last")
        if interrupted is not None:
            logger.message(f"interrupted at step {p.step}: checkpoint written; continue with "
                           f"`rlrun train resume={self.run_dir}`")
            logger.close()
            return {"status": "interrupted", "signal": interrupted, "step": p.step}
        final = self.evaluate(logger)
        summary = self._finish(logger, final, elapsed, p.step - step0)
        logger.close()
        return summary

    def _env_step(self, logger: RunLogger, losses: dict[str, list[float]], recent: deque) -> None:
        cfg, p = self.cfg, self.progress
        if p.step < int(cfg.learning_starts) and self.agent.uses_replay:
            action = sample_action(self.env.action_space, self.rng, self.last_info.get("action_mask"))
        else:
            action = self.agent.act(self.obs, explore=True)
        next_obs, reward, terminated, truncated, info = self.env.step(action)
        self.last_info = info
        p.step += 1
        p.episode_return += float(reward)
        p.episode_length += 1
        self.info_avg.add(info)
        if self.replay is not None:
            self.replay.add(self.obs, action, reward, next_obs, terminated, truncated)
            self.replay.on_step(p.step)
        else:
            self._record(self.agent.update(self._single(action, reward, next_obs, terminated)), losses)
        self.agent.on_step(p.step)
        self.obs = next_obs
        if terminated or truncated:
            p.episode += 1
            logger.episode(p.step, p.episode, p.episode_return, p.episode_length, self.info_avg.means())
            recent.append(p.episode_return)
            p.episode_return, p.episode_length = 0.0, 0
            self.info_avg.reset()
            self.agent.on_episode_end()
            self.obs, self.last_info = self.env.reset()
        if (self.replay is not None and p.step >= int(cfg.learning_starts)
                and p.step % int(cfg.train_every) == 0):
            for _ in range(int(cfg.gradient_steps)):
                self._learn(losses)

    def _learn(self, losses: dict[str, list[float]]) -> None:
        batch = self.replay.sample(self.agent.batch_size)
        out = self.agent.update(batch)
        td = out.pop("td_error", None)
        if td is not None:
            self.replay.update_priorities(batch.indices, td)
        self._record(out, losses)

    def _record(self, out: dict[str, Any], losses: dict[str, list[float]]) -> None:
        for k, v in out.items():
            if isinstance(v, int | float):
                if not math.isfinite(v):
                    raise TrainingDivergedError(f"{k} became {v} at step {self.progress.step}: training diverged")
                losses.setdefault(k, []).append(float(v))

    def _single(self, action: Any, reward: float, next_obs: np.ndarray, terminated: bool) -> Batch:
        """A batch of one transition, for online agents without replay."""
        return Batch.single(self.obs, flatten_action(self.env.action_space, action), reward, next_obs, terminated,
                            self.agent.gamma, self.agent.device)

    # ---- end of run ---------------------------------------------------------------------------------
    def _finish(self, logger: RunLogger, final: dict[str, Any], elapsed: float, steps: int) -> dict[str, Any]:
        p = self.progress
        if self.baseline is not None:
            base = evaluate_policy(self.eval_env, self.baseline, int(self.cfg.eval_episodes),
                                   int(self.cfg.eval_seed))
            final["baseline"] = compare(final, base, self.cfg.baseline)
            logger.message(format_comparison(final["baseline"]))
        summary = {
            "status": "finished",
            **self.labels,
            "step": p.step,
            "episodes": p.episode,
            "final": final,
            "best": {"return_mean": p.best_eval, "step": p.best_step},
            "train_seconds": elapsed,
            "steps_per_second": steps / max(elapsed, 1e-9),
        }
        (self.run_dir / "eval.json").write_text(json.dumps(summary, indent=2))
        hparams: dict[str, Any] = {}
        for group in ("agent", "env", "replay"):
            node = OmegaConf.to_container(self.cfg[group], resolve=True)
            hparams.update({f"{group}.{k}": v for k, v in node.items()
                            if not k.startswith("_") and k != "reward" and not isinstance(v, dict)})
        hparams.update({k: self.cfg[k] for k in ("seed", "total_steps", "learning_starts", "gradient_steps")})
        hparams.update(self.labels)
        logger.hparams({k: (str(v) if isinstance(v, list | dict) else v) for k, v in hparams.items()},
                       {"hparam/eval_return_mean": final["return_mean"], "hparam/best_return_mean": p.best_eval})
        if self.cfg.plots:
            self._plots(logger)
        logger.message(
            f"{format_result('final eval', final, first=self.key_metrics)} | "
            f"best {p.best_eval:.3f} at step {p.best_step} | "
            f"{summary['steps_per_second']:.0f} steps/s | run dir {self.run_dir}"
        )
        return summary

    def _plots(self, logger: RunLogger) -> None:
        try:
            from rlrun.plots import plot_run
        except ImportError:
            return
        for png in plot_run(self.run_dir):
            logger.image(f"plots/{png.stem}", png, self.progress.step)
