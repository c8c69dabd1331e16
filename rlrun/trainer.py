"""The one training loop: env copies <-> agent <-> data source <-> logger <-> checkpoints.

Three data sources, one loop:
- replay (off-policy): every env step is stored in the replay buffer; every `train_every` env steps (summed
  over the copies) the agent does `gradient_steps` updates on sampled batches. Agents without replay update
  on each transition instead (`agent.uses_replay` False).
- rollout (on-policy, `agent.on_policy`): `num_envs x n_steps` steps fill a rollout buffer through the agent's
  `policy_step`; a full buffer gets GAE(lambda) advantages and one `update`, then starts over.
- dataset (offline, `agent.offline`): a dataset loaded into the replay buffer; the env copies only evaluate.

Evaluation keeps model selection away from the test data: the evaluations during training, the one at the end
that may still update best.pt, and best.pt itself use the validation split (env copies built with the env's
`eval_kwargs["val"]`, seeds `val_seed`, ...); the final report (eval.json "final", the baseline comparison)
uses the test split (`eval_kwargs["test"]`, seeds `eval_seed`, ...), as `rlrun eval` does.

Online, each loop iteration steps all `num_envs` copies at once (rlrun.collect) with one batched `act`, and
`step` counts env steps summed over the copies (gradient updates offline). The pools never autoreset: a copy
whose episode ended is reset here after its last transition is stored, so no transition crosses episodes.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import shutil
import signal
import time
from collections import deque
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from rlrun.build import build_agent, build_baseline, build_pool, build_replay
from rlrun.checkpoint import RunDirLock, load_checkpoint, remove_orphaned_tmp, save_checkpoint
from rlrun.collect import StepResult
from rlrun.config import validate_run
from rlrun.errors import CheckpointError, ConfigError, EnvCopyError, RlrunError, TrainingDivergedError
from rlrun.evaluate import (
    InfoAverager,
    compare,
    evaluate_policy,
    format_comparison,
    format_result,
    key_metrics,
    tensorboard_layout,
)
from rlrun.logger import RunLogger
from rlrun.progress import Interrupted, Progress, StopRequested, crossed
from rlrun.replay.buffer import Batch
from rlrun.replay.dataset import load_dataset
from rlrun.replay.rollout import PolicyStep, RolloutBuffer
from rlrun.spaces import flatten_action, sample_action

log = logging.getLogger("rlrun")

LOSS_LOG_EVERY = 1000  # env steps between averaged loss scalars


class Trainer:
    def __init__(self, cfg: DictConfig, run_dir: Path, resume: bool = False, labels: dict[str, str] | None = None):
        validate_run(cfg)
        # What exists now (modules, torch's alone ~200k objects, and the config) outlives the run. Frozen until
        # close(), the cyclic collector's full passes walk only what the run allocates: an env that builds
        # objects every step triggers them, and each one over the whole process took ~0.1 s in a blockchain
        # run (`python -m bench chain`, the "frozen" row). Collected first, so that what an earlier run in this
        # process left behind (a sequential sweep) is freed instead of frozen.
        gc.collect()
        gc.freeze()
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        created = not self.run_dir.exists()
        self._lock: RunDirLock | None = RunDirLock(self.run_dir).acquire()
        remove_orphaned_tmp(self.run_dir / "checkpoints")  # left by a killed writer; we are the only one now
        try:
            self._setup(cfg, resume, labels)
        except BaseException as e:
            self.close()
            if created and isinstance(e, RlrunError):  # a refused run leaves no directory behind
                shutil.rmtree(self.run_dir, ignore_errors=True)
            raise

    def _setup(self, cfg: DictConfig, resume: bool, labels: dict[str, str] | None) -> None:
        self.labels = labels or {}
        self.resume = resume
        self.num_envs = int(cfg.num_envs)
        torch.set_num_threads(int(cfg.torch_threads))
        torch.manual_seed(int(cfg.seed))
        self.envs = build_pool(cfg, log_dir=self.run_dir)
        n_eval = min(self.num_envs, int(cfg.eval_episodes))
        self.val_envs = build_pool(cfg, log_dir=self.run_dir / "val", evaluation="val", num_envs=n_eval)
        self.eval_envs = build_pool(cfg, log_dir=self.run_dir / "eval", evaluation="test", num_envs=n_eval)
        self._build(cfg)

    def _build(self, cfg: DictConfig) -> None:
        n = self.num_envs
        self.agent = build_agent(cfg, self.envs)
        self.baseline = build_baseline(cfg, self.eval_envs)
        self.key_metrics = key_metrics(self.envs)
        self.offline = bool(self.agent.offline)
        self.replay = build_replay(cfg, self.envs, self.agent) if (self.agent.uses_replay or self.offline) else None
        self.rollout = self._build_rollout() if self.agent.on_policy and not self.offline else None
        if self.offline:
            if not cfg.dataset:
                raise ConfigError(f"agent {type(self.agent).__name__} is offline: set dataset=<path to .npz>")
            self.replay.add_dataset(load_dataset(str(cfg.dataset), like=self.replay))
        self.rng = np.random.default_rng(int(cfg.seed) + 2)  # random actions during learning_starts
        self.progress = Progress(episode_returns=[0.0] * n, episode_lengths=[0] * n)
        self.info_avg = [InfoAverager() for _ in range(n)]
        self.obs: np.ndarray | None = None
        self.last_infos: list[dict[str, Any]] = [{} for _ in range(n)]  # their action masks guide random actions
        self.ckpt_dir = self.run_dir / "checkpoints"
        if self.resume:
            self._restore(load_checkpoint(self.ckpt_dir / "last.pt"))

    def _build_rollout(self) -> RolloutBuffer:
        agent, n = self.agent, self.num_envs
        if agent.batch_size > agent.n_steps * n:
            raise ConfigError(f"agent.batch_size={agent.batch_size} is larger than a rollout "
                              f"(agent.n_steps={agent.n_steps} x num_envs={n}); lower it or collect more")
        obs_dim = int(np.prod(self.envs.observation_space.shape))
        return RolloutBuffer(agent.n_steps, n, obs_dim, agent.raw_dim, agent.mask_dim, device=agent.device)

    def close(self) -> None:
        """Stop the env copies (worker processes, Ray actors), remove temp files an error left behind, and
        give the run directory free."""
        for pool in (getattr(self, "envs", None), getattr(self, "val_envs", None), getattr(self, "eval_envs", None)):
            if pool is not None:
                pool.close()
        if self._lock is not None:
            remove_orphaned_tmp(self.run_dir / "checkpoints")
            self._lock.release()
            self._lock = None
        gc.unfreeze()  # what __init__ froze goes back to the collector

    # ---- checkpoints --------------------------------------------------------------------------------
    def _payload(self, env_states: bool = True) -> dict[str, Any]:
        states = self.envs.call("get_state") if env_states and self.envs.has_method("get_state") else None
        return {
            "agent": self.agent.state_dict(),
            "replay": self.replay.state_dict() if self.replay is not None else None,
            "rollout": self.rollout.state_dict() if self.rollout is not None else None,
            "trainer": {**asdict(self.progress), "info_avg": [a.state_dict() for a in self.info_avg],
                        "obs": None if self.obs is None else torch.as_tensor(self.obs)},
            "rng": {"torch": torch.get_rng_state(), "trainer": self.rng.bit_generator.state},
            "env": states,
        }

    def save(self, name: str, env_states: bool = True) -> None:
        save_checkpoint(self.ckpt_dir / f"{name}.pt", self._payload(env_states))

    def _restore(self, ckpt: dict[str, Any]) -> None:
        try:
            self.agent.load_state_dict(ckpt["agent"])
            if self.replay is not None and ckpt["replay"] is not None:
                self.replay.load_state_dict(ckpt["replay"])  # offline too: the dataset's learned priorities
            if self.rollout is not None:
                self.rollout.load_state_dict(ckpt["rollout"])
            t = dict(ckpt["trainer"])
            averagers = t.pop("info_avg")
            obs = t.pop("obs")
            self.progress = Progress(**t)
            if len(averagers) != self.num_envs or len(self.progress.episode_returns) != self.num_envs:
                raise ValueError(f"it was written by a run with num_envs={len(averagers)}, this one has "
                                 f"num_envs={self.num_envs}")
            for avg, state in zip(self.info_avg, averagers, strict=True):
                avg.load_state_dict(state)
            torch.set_rng_state(ckpt["rng"]["torch"])
            self.rng.bit_generator.state = ckpt["rng"]["trainer"]
        except (KeyError, RuntimeError, TypeError, ValueError) as e:
            raise CheckpointError(f"checkpoint does not match this run's config ({e})") from None
        if self.offline:
            return
        # Re-enter the interrupted episodes exactly when the env can restore its state; otherwise start fresh,
        # deterministically seeded episodes.
        seeds = [int(self.cfg.seed) + 7919 * self.progress.episode + i for i in range(self.num_envs)]
        self.obs, self.last_infos = self.envs.reset(seeds)
        if ckpt["env"] is not None and obs is not None and self.envs.has_method("set_state"):
            self.envs.call("set_state", [(state,) for state in ckpt["env"]])
            self.obs = obs.numpy()
        else:
            log.warning("env copies restart the interrupted episodes from a reset (the env has no "
                        "get_state/set_state, or a copy failed before the checkpoint)")
            p = self.progress
            p.episode_returns, p.episode_lengths = [0.0] * self.num_envs, [0] * self.num_envs
            for avg in self.info_avg:
                avg.reset()
            if self.replay is not None:
                self.replay.drop_open_windows()  # their episodes are gone: no window may span two episodes
            if self.rollout is not None:
                self.rollout.reset()  # a rollout must not continue across the restarted episodes

    # ---- evaluation ---------------------------------------------------------------------------------
    def evaluate(self, logger: RunLogger) -> dict[str, Any]:
        """Validation: the in-training evaluation that selects best.pt."""
        cfg, p = self.cfg, self.progress
        result = evaluate_policy(self.val_envs, self.agent, int(cfg.eval_episodes), int(cfg.val_seed))
        result["split"] = "val"
        logger.evaluation(p.step, p.episode, result)
        if result["return_mean"] > p.best_eval:
            p.best_eval, p.best_step = result["return_mean"], p.step
            self.save("best")
        logger.message(format_result(f"[step {p.step}] eval", result, max_metrics=4, first=self.key_metrics))
        return result

    # ---- the loop -----------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        try:
            return self._run()
        finally:
            self.close()

    def _run(self) -> dict[str, Any]:
        cfg, p = self.cfg, self.progress
        total = int(cfg.total_steps)
        logger = RunLogger(self.run_dir, total, p.step, bool(cfg.progress), self.resume,
                           tensorboard_layout(self.envs), final_step=total)
        if self.obs is None and not self.offline:
            self.obs, self.last_infos = self.envs.reset([int(cfg.seed) + i for i in range(self.num_envs)])
        losses: dict[str, list[float]] = {}
        recent = deque(p.recent_returns, maxlen=20)
        t0, step0, last_bar = time.perf_counter(), p.step, p.step
        with StopRequested() as stop:
            while p.step < total and not stop:
                before = p.step
                try:
                    if self.offline:
                        self._learn(losses)
                        p.step += 1
                        self.replay.on_step(p.step)  # PER's beta anneals over gradient updates offline
                    else:
                        self._env_step(logger, losses, recent)
                except EnvCopyError as e:
                    p.recent_returns = list(recent)
                    self.save("last", env_states=False)  # a failed copy cannot report its state
                    logger.message(f"stopped at step {p.step}: {e}; checkpoint written, continue with "
                                   f"`rlrun train resume={self.run_dir}`")
                    logger.close()
                    raise
                if crossed(before, p.step, LOSS_LOG_EVERY) and losses:
                    sps = (p.step - step0) / max(time.perf_counter() - t0, 1e-9)
                    logger.scalars({**{k: float(np.mean(v)) for k, v in losses.items()}, "time/sps": sps}, p.step)
                    losses.clear()
                if p.step - last_bar >= 100 or p.step >= total:
                    sps = (p.step - step0) / max(time.perf_counter() - t0, 1e-9)
                    post = {"sps": f"{sps:.0f}"}
                    if recent:
                        post["return"] = f"{np.mean(recent):.3g}"
                    logger.progress(p.step - last_bar, post)
                    last_bar = p.step
                if crossed(before, p.step, int(cfg.eval_every)) and p.step < total:
                    self.evaluate(logger)
                if crossed(before, p.step, int(cfg.checkpoint_every)):
                    p.recent_returns = list(recent)
                    self.save("last")
            if losses:
                logger.scalars({k: float(np.mean(v)) for k, v in losses.items()}, p.step)
            p.recent_returns = list(recent)
            elapsed = time.perf_counter() - t0
            self.save("last")  # inside the handlers: a signal now cannot kill the write half-way
            if stop.signum is not None:
                logger.message(f"interrupted by {signal.Signals(stop.signum).name} at step {p.step}: checkpoint "
                               f"written; continue with `rlrun train resume={self.run_dir}`")
                logger.close()
                return {"status": "interrupted", "signal": stop.signum, "step": p.step}
            stop.raise_on_signal()
            try:
                validation = self.evaluate(logger)
                final = self._test(logger)
                self._compare_to_baseline(final, logger)
            except Interrupted as e:
                logger.message(f"interrupted by {signal.Signals(e.signum).name} during the final evaluation at "
                               f"step {p.step}: checkpoint written; `rlrun train resume={self.run_dir}` "
                               f"evaluates it again")
                logger.close()
                return {"status": "interrupted", "signal": e.signum, "step": p.step}
            stop.raise_on_signal(False)  # the result is complete: writing it out takes a moment, let it
            summary = self._finish(logger, final, validation, elapsed, p.step - step0)
        logger.close()
        return summary

    def _env_step(self, logger: RunLogger, losses: dict[str, list[float]], recent: deque) -> None:
        """One step of every env copy: act, step, store, end episodes, learn."""
        cfg, p, agent = self.cfg, self.progress, self.agent
        decision: PolicyStep | None = None
        masks = self._action_masks() if self.rollout is not None else None
        if self.rollout is not None:
            decision = agent.policy_step(self.obs, masks)
            actions = decision.actions
        elif p.step < int(cfg.learning_starts) and agent.uses_replay:
            actions = [sample_action(self.envs.action_space, self.rng, info.get("action_mask"))
                       for info in self.last_infos]
        else:
            actions = agent.act_batch(self.obs, explore=True)
        res = self.envs.step(actions)
        before = p.step
        p.step += self.num_envs
        for i in range(self.num_envs):
            p.episode_returns[i] += float(res.rewards[i])
            p.episode_lengths[i] += 1
            self.info_avg[i].add(res.infos[i])
        if decision is not None:
            self._store_rollout(decision, res, masks)
        elif self.replay is not None:
            for i in range(self.num_envs):
                self.replay.add(self.obs[i], actions[i], res.rewards[i], res.obs[i], res.terminated[i],
                                res.truncated[i], env_index=i)
            self.replay.on_step(p.step)
        else:
            for i in range(self.num_envs):
                self._record(agent.update(self._single(i, actions[i], res)), losses)
        agent.on_step(p.step)
        self.obs, self.last_infos = res.obs, res.infos
        self._end_episodes(res, logger, recent)
        if self.rollout is not None:
            if self.rollout.full:
                self.rollout.compute_advantages(agent.value(self.obs), agent.gamma, agent.gae_lambda)
                self._record(agent.update(self.rollout), losses)
                self.rollout.reset()
        elif self.replay is not None:
            rounds = crossed(before, p.step, int(cfg.train_every), start=int(cfg.learning_starts))
            for _ in range(rounds * int(cfg.gradient_steps)):
                self._learn(losses)

    def _end_episodes(self, res: StepResult, logger: RunLogger, recent: deque) -> None:
        """Log the episodes that ended in this step and reset their copies (a fresh, unseeded episode)."""
        p = self.progress
        ended = np.flatnonzero(res.terminated | res.truncated)
        for i in ended:
            p.episode += 1
            logger.episode(p.step, p.episode, p.episode_returns[i], p.episode_lengths[i], self.info_avg[i].means())
            recent.append(p.episode_returns[i])
            p.episode_returns[i], p.episode_lengths[i] = 0.0, 0
            self.info_avg[i].reset()
            self.agent.on_episode_end(int(i))
        if len(ended):
            obs, infos = self.envs.reset([None] * len(ended), indices=ended.tolist())
            self.obs[ended] = obs
            for row, i in enumerate(ended):
                self.last_infos[i] = infos[row]

    def _action_masks(self) -> np.ndarray | None:
        """The copies' `info["action_mask"]` stacked [N, n] (all actions valid for a copy that gives none)."""
        dim = self.agent.mask_dim
        if not dim:
            return None
        masks = np.ones((self.num_envs, dim), dtype=bool)
        for i, info in enumerate(self.last_infos):
            if info.get("action_mask") is not None:
                masks[i] = np.asarray(info["action_mask"], dtype=bool).reshape(-1)
        return masks

    def _store_rollout(self, decision: PolicyStep, res: StepResult, masks: np.ndarray | None) -> None:
        """A truncated episode is bootstrapped from the value of its final observation; a terminated one not."""
        rewards = res.rewards.astype(np.float64)
        cut = np.flatnonzero(res.truncated & ~res.terminated)
        if len(cut):
            rewards[cut] += self.agent.gamma * self.agent.value(res.obs[cut])
        self.rollout.add(decision, rewards, res.terminated | res.truncated, masks)

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

    def _single(self, i: int, action: Any, res: StepResult) -> Batch:
        """A batch of one transition of copy i, for online agents without replay."""
        return Batch.single(self.obs[i], flatten_action(self.envs.action_space, action), res.rewards[i],
                            res.obs[i], res.terminated[i], self.agent.gamma, self.agent.device)

    # ---- end of run ---------------------------------------------------------------------------------
    def _test(self, logger: RunLogger) -> dict[str, Any]:
        """The final report's figure: the test split, never used to select anything."""
        result = evaluate_policy(self.eval_envs, self.agent, int(self.cfg.eval_episodes), int(self.cfg.eval_seed))
        result["split"] = "test"
        logger.message(format_result("test", result, max_metrics=4, first=self.key_metrics))
        return result

    def _compare_to_baseline(self, final: dict[str, Any], logger: RunLogger) -> None:
        if self.baseline is not None:
            base = evaluate_policy(self.eval_envs, self.baseline, int(self.cfg.eval_episodes),
                                   int(self.cfg.eval_seed))
            final["baseline"] = {**compare(final, base, self.cfg.baseline), "split": "test"}
            logger.message(format_comparison(final["baseline"]))

    def _finish(self, logger: RunLogger, final: dict[str, Any], validation: dict[str, Any], elapsed: float,
                steps: int) -> dict[str, Any]:
        p = self.progress
        summary = {
            "status": "finished",
            **self.labels,
            "step": p.step,
            "episodes": p.episode,
            "final": final,  # test split
            "validation": validation,  # the last validation evaluation
            "best": {"return_mean": p.best_eval, "step": p.best_step, "split": "val"},
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
                       {"hparam/eval_return_mean": final["return_mean"],
                        "hparam/val_return_mean": validation["return_mean"], "hparam/best_return_mean": p.best_eval})
        if self.cfg.plots:
            self._plots(logger)
        logger.message(
            f"{format_result('final eval', final, first=self.key_metrics)} | on the test split | "
            f"best on validation {p.best_eval:.3f} at step {p.best_step} | "
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
