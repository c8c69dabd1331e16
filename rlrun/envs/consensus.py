"""Consensus-parameter tuning (seed 001) as a Gymnasium environment, `rlrun/Consensus-v0` / `env=consensus`.

An RL agent sits in the consensus layer of a BFT proof-of-stake chain (simulated in
`rlrun.envs.consensus_sim`, SimPy): every `observation_interval` blocks it observes the chain and proposes
changes to four consensus parameters.

Observation: the seed's 25 values in the seed's order (OBSERVATION_NAMES), measured over the last
`observation_interval` blocks (block-level values averaged over the window, counts summed over it, state
values taken at its end). The agent sees raw / OBS_SCALE clipped to [-10, 10], so every entry is O(1) in
normal operation; the raw values are in `info` under the same names.

    idx name                  unit                      scale     idx name                 unit    scale
    0   block_utilization     gas used / gas limit      1         13  max_commit_latency   ms      1000
    1   tx_count              tx per block              1000      14  precommit_ratio      power   1
    2   avg_tx_size           bytes                     1000      15  failed_tx_ratio      -       1
    3   block_time            ms                        T0        16  avg_gas_per_tx       gas     1e5
    4   block_time_delta      ms (block time - target)  T0        17  reward_per_validator uqor    1e6
    5   gas_price_50th        gas price                 2 P0      18  slash_count          events  10
    6   gas_price_95th        gas price                 2 P0      19  jail_count           events  10
    7   mempool_size          tx                        5000      20  inflation_rate       -       0.1
    8   mempool_bytes         bytes                     1e6       21  bonded_ratio         -       1
    9   validator_count       validators                N0        22  reputation_mean      -       1
    10  validator_gini        -                         1         23  reputation_stddev    -       0.25
    11  missed_block_ratio    -                         1         24  mev_estimate         -       1
    12  avg_commit_latency    ms                        1000
    (T0 = default_block_time_ms, P0 = default_base_gas_price, N0 = default_validator_set_size)

Every feature moves under the default workload, whatever the policy (a test checks it):
- mempool_size / mempool_bytes: pending transactions (and their bytes) when the proposer builds a block,
  before inclusion, averaged over the window: the arrivals since the previous block plus any backlog (demand
  above capacity in bursts). Sampled between blocks, the pool of the simulator is empty whenever the last
  block cleared it, which at the defaults is most of the time.
- validator_count: active validators up at each height (in the active set, not offline, region not down),
  averaged over the window. The active set itself stays full, as on a Cosmos chain with more bonded
  candidates than max_validators (extra candidates replace jailed validators): its size is
  `info["active_set_size"]`.
- inflation_rate / bonded_ratio: x/mint and delegation run on a policy clock `economy_speedup` times the
  consensus clock (rlrun.envs.consensus_sim.economy); in real time they move by millionths per episode.
- gas prices are scaled by 2 P0: the base price may reach 10 P0 (PARAMETER_BOUNDS) and the 95th percentile
  about 12 P0 there, which at scale P0 would sit at the clip.

Action: 5 values in [-1, 1] (ACTION_NAMES): block_time_delta, gas_price_delta, validator_set_size_delta
(recommended and logged, never applied), pool_weight_rpos_delta, pool_weight_dpos_delta. Each moves its
parameter by a * max_change of the agent mode relative to the current value (rlrun.governance.modes), clamped
to PARAMETER_BOUNDS; rpos + dpos weights are capped at 0.95 so the plain PoS pool keeps at least 5%.

Reward (seed's weights, from the `reward` group, which must sum to exactly 1.0):
    r = w_throughput * (utilization_t - utilization_t-1) + w_finality * (precommit_t - precommit_t-1)
        + w_decentralization * (gini_t-1 - gini_t) - w_mev * mev_estimate_t - w_failed_txs * failed_ratio_t

Agent modes: Shadow (default per the seed: nothing is applied, recommendations go to `shadow.jsonl`),
Conservative (+-10%), Autonomous (+-25%), Paused (no observation: the returned observation is the last one
collected; the action is ignored). `enabled=false` switches the RL engine off (static defaults: the
baseline). The circuit breaker (rlrun.governance.circuit_breaker) checks every block; when it triggers, all
tuned parameters revert to their defaults, the agent is paused until it clears, `info["agent_reload"]` asks
the caller to reload its in-memory agent from the checkpoint, and a `circuit_breaker_triggered` event is
written to `events.jsonl` (when `log_dir` is set) and returned in `info["events"]`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlrun.envs.consensus_sim.chain import BlockRecord, ChainParams, ChainSim, SimConfig
from rlrun.envs.consensus_sim.governance import (
    MAX_POOL_WEIGHT_SUM,
    PARAMETER_BOUNDS,
    TUNED_NAMES,
    ChainGovernance,
)
from rlrun.envs.consensus_sim.observe import OBSERVATION_NAMES, WindowObserver
from rlrun.envs.rewards import ConsensusReward, as_reward
from rlrun.errors import ConfigError
from rlrun.governance.modes import AgentMode, parse_mode

ACTION_NAMES = (
    "block_time_delta",
    "gas_price_delta",
    "validator_set_size_delta",
    "pool_weight_rpos_delta",
    "pool_weight_dpos_delta",
)
OBS_CLIP = 10.0
class ConsensusEnv(gym.Env):
    metadata = {"render_modes": []}
    tensorboard_layout = {
        "consensus": {
            "reward terms": [
                "Multiline",
                [
                    "env/reward_throughput",
                    "env/reward_finality",
                    "env/reward_decentralization",
                    "env/reward_mev",
                    "env/reward_failed_txs",
                ],
            ],
            "block time (ms)": [
                "Multiline",
                ["env/recommended_block_time_ms", "env/applied_block_time_ms", "env/block_time"],
            ],
            "base gas price": [
                "Multiline",
                ["env/recommended_base_gas_price", "env/applied_base_gas_price", "env/gas_price_50th"],
            ],
            "pool weights": [
                "Multiline",
                [
                    "env/recommended_pool_weight_rpos",
                    "env/applied_pool_weight_rpos",
                    "env/recommended_pool_weight_dpos",
                    "env/applied_pool_weight_dpos",
                ],
            ],
            "validator set size": [
                "Multiline",
                [
                    "env/recommended_validator_set_size",
                    "env/applied_validator_set_size",
                    "env/validator_count",
                ],
            ],
            "finality": ["Multiline", ["env/precommit_ratio", "env/missed_block_ratio"]],
            "circuit breaker": [
                "Multiline",
                ["env/circuit_breaker_triggered", "env/circuit_breaker_active", "env/healthy_fraction"],
            ],
        }
    }

    def __init__(
        self,
        enabled: bool = True,
        observation_interval: int = 10,
        agent_mode: str | int = "shadow",
        max_change_conservative: float = 0.10,
        max_change_autonomous: float = 0.25,
        circuit_breaker_window: int = 50,
        circuit_breaker_threshold: float = 0.50,
        default_block_time_ms: int = 5000,
        default_base_gas_price: float = 100.0,
        default_validator_set_size: int = 100,
        default_pool_weight_rpos: float = 0.40,
        default_pool_weight_dpos: float = 0.35,
        max_steps: int = 100,
        warmup_blocks: int = 20,
        block_gas_limit: int = 20_000_000,
        tx_rate: float = 40.0,
        daily_cycle_amplitude: float = 0.3,
        burst_rate_per_hour: float = 2.0,
        burst_multiplier: float = 3.0,
        burst_duration_s: float = 300.0,
        incident_rate_per_hour: float = 0.5,
        incident_duration_s: float = 90.0,
        tx_ttl_s: float = 60.0,
        mempool_capacity: int = 20_000,
        extra_candidates: int = 20,
        economy_speedup: float = 1000.0,
        log_dir: str | None = None,
        reward: dict | None = None,
    ) -> None:
        self.reward = as_reward(reward, ConsensusReward)
        checks = {
            "observation_interval": observation_interval >= 1,
            "max_steps": max_steps >= 1,
            "warmup_blocks": warmup_blocks >= 0,
            "default_block_time_ms": default_block_time_ms >= 1,
            "default_base_gas_price": default_base_gas_price > 0,
            "default_validator_set_size": default_validator_set_size >= 4,
            "block_gas_limit": block_gas_limit > 0,
            "tx_rate": tx_rate >= 0,
            "daily_cycle_amplitude": 0 <= daily_cycle_amplitude <= 1,
            "burst_rate_per_hour": burst_rate_per_hour >= 0,
            "burst_multiplier": burst_multiplier >= 0,
            "burst_duration_s": burst_duration_s > 0,
            "incident_rate_per_hour": incident_rate_per_hour >= 0,
            "incident_duration_s": incident_duration_s > 0,
            "tx_ttl_s": tx_ttl_s > 0,
            "mempool_capacity": mempool_capacity >= 1,
            "extra_candidates": extra_candidates >= 0,
            "economy_speedup": economy_speedup > 0,
        }
        for key, ok in checks.items():
            if not ok:
                raise ConfigError(f"env.{key}={locals()[key]!r} is out of range")
        for key, w in (
            ("default_pool_weight_rpos", default_pool_weight_rpos),
            ("default_pool_weight_dpos", default_pool_weight_dpos),
        ):
            lo, hi = PARAMETER_BOUNDS[key.removeprefix("default_")]
            if not lo <= w <= hi:
                raise ConfigError(f"env.{key}={w} must be in [{lo}, {hi}]")
        if default_pool_weight_rpos + default_pool_weight_dpos > MAX_POOL_WEIGHT_SUM + 1e-12:
            raise ConfigError(
                f"env.default_pool_weight_rpos + env.default_pool_weight_dpos must be <= "
                f"{MAX_POOL_WEIGHT_SUM} (the PoS pool keeps the rest)"
            )
        self.enabled = bool(enabled)
        self.observation_interval = int(observation_interval)
        self.mode = parse_mode(agent_mode, "env.agent_mode")
        self.max_steps = int(max_steps)
        self.warmup_blocks = int(warmup_blocks)
        self.default_block_time_ms = int(default_block_time_ms)
        self.default_base_gas_price = float(default_base_gas_price)
        self.default_validator_set_size = int(default_validator_set_size)
        self.sim_config = SimConfig(
            validator_set_size=self.default_validator_set_size,
            extra_candidates=int(extra_candidates),
            block_gas_limit=int(block_gas_limit),
            tx_rate=float(tx_rate),
            daily_cycle_amplitude=float(daily_cycle_amplitude),
            burst_rate_per_hour=float(burst_rate_per_hour),
            burst_multiplier=float(burst_multiplier),
            burst_duration_s=float(burst_duration_s),
            incident_rate_per_hour=float(incident_rate_per_hour),
            incident_duration_s=float(incident_duration_s),
            tx_ttl_s=float(tx_ttl_s),
            mempool_capacity=int(mempool_capacity),
            default_block_time_ms=float(default_block_time_ms),
            default_base_gas_price=float(default_base_gas_price),
            economy_speedup=float(economy_speedup),
        )
        self.governance = ChainGovernance(
            {
                "block_time_ms": float(default_block_time_ms),
                "base_gas_price": float(default_base_gas_price),
                "validator_set_size": float(default_validator_set_size),
                "pool_weight_rpos": float(default_pool_weight_rpos),
                "pool_weight_dpos": float(default_pool_weight_dpos),
            },
            self.mode, max_change_conservative, max_change_autonomous, circuit_breaker_window,
            circuit_breaker_threshold, Path(log_dir) if log_dir else None,
        )

        n = len(OBSERVATION_NAMES)
        self.observation_space = spaces.Box(-OBS_CLIP, OBS_CLIP, shape=(n,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(len(ACTION_NAMES),), dtype=np.float32)
        t0, p0, n0 = (
            float(default_block_time_ms),
            float(default_base_gas_price),
            float(default_validator_set_size),
        )
        self.obs_scale = np.array(
            [
                1,
                1000,
                1000,
                t0,
                t0,
                2 * p0,
                2 * p0,
                5000,
                1e6,
                n0,
                1,
                1,
                1000,
                1000,
                1,
                1,
                1e5,
                1e6,
                10,
                10,
                0.1,
                1,
                1,
                0.25,
                1,
            ],
            dtype=np.float64,
        )
        self.sim: ChainSim | None = None
        self.episode = -1
        self._t = 0
        self.observer = WindowObserver()
        self._raw = np.zeros(n)
        self._obs = np.zeros(n, dtype=np.float32)

    # ---- Gymnasium API ------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.episode += 1
        self._t = 0
        self.governance.reset()
        params = ChainParams(*self.governance.param_values())
        sim_rng = np.random.default_rng(self.np_random.integers(2**63))
        self.sim = ChainSim(self.sim_config, params, sim_rng, on_block=self._on_block)
        self.governance.events = []
        self.observer.start(self.sim)
        if self.warmup_blocks:
            self.sim.run_blocks(self.warmup_blocks)
            self.observer.start(self.sim)
        self.sim.run_blocks(self.observation_interval)  # the first observation window, at the defaults
        self.governance.events = []
        self._raw = self._collect()
        self._obs = self._scale(self._raw)
        return self._obs.copy(), {
            "raw_observation": dict(zip(OBSERVATION_NAMES, self._raw.tolist(), strict=True))
        }

    def step(self, action):
        if self.sim is None:
            raise RuntimeError("ConsensusEnv.step called before reset")
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape[0] != len(ACTION_NAMES):
            raise ValueError(f"ConsensusEnv expects {len(ACTION_NAMES)} action values, got {a.shape[0]}")
        if not np.all(np.isfinite(a)):
            raise ValueError("ConsensusEnv.step got a non-finite action")
        self._t += 1
        observed_raw = self._raw
        idle = self.mode == AgentMode.PAUSED or not self.enabled
        decision = self.governance.decide(None if idle else a)
        self.governance.apply(self.sim)
        if self.mode == AgentMode.SHADOW and self.enabled:
            self.governance.log_shadow({
                "episode": self.episode,
                "step": self._t,
                "height": self.sim.height,
                "time_s": round(self.sim.now_ms / 1000.0, 3),
                "mode": self.mode.name.lower(),
                "action": decision.action,
                "recommended": decision.recommended,
                "applied": decision.applied,
                "observation": dict(zip(OBSERVATION_NAMES, observed_raw.tolist(), strict=True)),
            })
        self.governance.events = []
        self.sim.run_blocks(self.observation_interval)
        prev = self._raw
        raw = self._collect()
        self._raw = raw
        if self.mode != AgentMode.PAUSED:
            self._obs = self._scale(raw)
        terms = self._reward_terms(prev, raw)
        reward = float(sum(terms.values()))
        truncated = self._t >= self.max_steps
        info = self._info(raw, terms, decision, idle)
        return self._obs.copy(), reward, False, truncated, info

    def set_mode(self, mode: str | int | AgentMode) -> None:
        """A governance mode transition (takes effect at the next step)."""
        self.mode = parse_mode(mode, "agent_mode")
        self.governance.set_mode(self.mode)

    def _on_block(self, rec: BlockRecord) -> None:
        self.observer.add(rec)
        self.governance.on_block(rec, self.sim, check=self.enabled, episode=self.episode, step=self._t)

    # ---- observation --------------------------------------------------------------------------------
    def _collect(self) -> np.ndarray:
        """The seed's 25 values over the blocks since the last collection."""
        raw, self._window_extra = self.observer.collect(self.sim)
        return raw

    def _scale(self, raw: np.ndarray) -> np.ndarray:
        return np.clip(raw / self.obs_scale, -OBS_CLIP, OBS_CLIP).astype(np.float32)

    def raw_observation(self) -> dict[str, float]:
        return dict(zip(OBSERVATION_NAMES, self._raw.tolist(), strict=True))

    # ---- reward and info ----------------------------------------------------------------------------
    def _reward_terms(self, prev: np.ndarray, cur: np.ndarray) -> dict[str, float]:
        i = {name: k for k, name in enumerate(OBSERVATION_NAMES)}
        return self.reward.terms({
            "block_utilization_change": cur[i["block_utilization"]] - prev[i["block_utilization"]],
            "precommit_ratio_change": cur[i["precommit_ratio"]] - prev[i["precommit_ratio"]],
            "validator_gini_decrease": prev[i["validator_gini"]] - cur[i["validator_gini"]],
            "mev_estimate": cur[i["mev_estimate"]],
            "failed_tx_ratio": cur[i["failed_tx_ratio"]],
        })

    def _info(self, raw: np.ndarray, terms: dict[str, float], decision: Any, idle: bool) -> dict[str, Any]:
        info: dict[str, Any] = dict(zip(OBSERVATION_NAMES, raw.tolist(), strict=True))
        info.update({k: float(v) for k, v in terms.items()})
        for name in TUNED_NAMES:
            info[f"recommended_{name}"] = float(decision.recommended[name])
            info[f"applied_{name}"] = float(self.governance.governor.values[name])
        events = self.governance.events
        triggered = sum(e["event"] == "circuit_breaker_triggered" for e in events)
        status, active = self.governance.status, self.governance.breaker.active
        info.update(
            {
                "agent_mode": int(self.mode),
                "agent_paused": float(idle or active),
                "circuit_breaker_active": float(active),
                "circuit_breaker_triggered": float(triggered),
                "circuit_breaker_cleared": float(
                    sum(e["event"] == "circuit_breaker_cleared" for e in events)
                ),
                "agent_reload": float(triggered > 0),
                "healthy_fraction": float(status.fraction) if status is not None else 1.0,
                "block_height": float(self.sim.height),
                "sim_time_s": self.sim.now_ms / 1000.0,
                **self._window_extra,
            }
        )
        info["events"] = list(events)
        return info
