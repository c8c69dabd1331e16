"""DDPG in Conservative mode vs the static defaults on env=consensus, over several training seeds:
`python -m bench consensus` (BENCH_SEEDS="0 1 2 3 4" to choose the seeds; ~1.5 min per seed on one core).

Each seed trains exactly as the slow test `tests/test_consensus_env.py::
test_trained_ddpg_in_conservative_mode_beats_static_defaults` does (4,000 decisions, learning_starts 500,
`tuned/consensus_ddpg.yaml`), then the final policy, its fixed-point export and the zero action (the static
defaults) play the same 10 held-out episodes (seeds 2,000,000-2,000,009). Mean ± std return per 100-decision
episode, and on how many of the 10 episodes the trained policy beat the defaults.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import set_threads

HELDOUT_SEED = 2_000_000
EPISODES = 10
OVERRIDES = ["env=consensus", "agent=ddpg", "total_steps=4000", "learning_starts=500", "eval_every=2000",
             "eval_episodes=3", "checkpoint_every=0", "progress=false", "plots=false"]


class Static:
    def act(self, obs, explore=False):
        return np.zeros(5, dtype=np.float32)


def one_seed(seed: int) -> tuple[dict, dict, dict, float]:
    from rlrun.build import build_env
    from rlrun.cli import _compose
    from rlrun.deploy.export import FixedPointAgent
    from rlrun.evaluate import evaluate_policy
    from rlrun.trainer import Trainer

    cfg = _compose([*OVERRIDES, f"seed={seed}"])
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        trainer = Trainer(cfg, Path(tmp))
        trainer.run()
        wall = time.perf_counter() - t0
        env = build_env(cfg, log_dir=Path(tmp) / "heldout", evaluation=True)
        trained = evaluate_policy(env, trainer.agent, EPISODES, HELDOUT_SEED)
        fixed = evaluate_policy(env, FixedPointAgent.from_agent(trainer.agent), EPISODES, HELDOUT_SEED)
        static = evaluate_policy(env, Static(), EPISODES, HELDOUT_SEED)
        env.close()
    return trained, fixed, static, wall


def main() -> None:
    set_threads(1)
    seeds = [int(s) for s in os.environ.get("BENCH_SEEDS", "0 1 2").split()]
    rows = [("training seed", "trained DDPG", "fixed-point", "static defaults", "episodes won", "train s")]
    for seed in seeds:
        trained, fixed, static, wall = one_seed(seed)
        won = int(np.sum(np.asarray(trained["returns"]) > np.asarray(static["returns"])))
        rows.append((str(seed), f"{trained['return_mean']:.2f} ± {trained['return_std']:.2f}",
                     f"{fixed['return_mean']:.2f}", f"{static['return_mean']:.2f} ± {static['return_std']:.2f}",
                     f"{won}/{EPISODES}", f"{wall:.0f}"))
        print(f"seed {seed} done", flush=True)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
