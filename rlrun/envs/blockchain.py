"""Seed 000's SimEnv as a Gymnasium environment (rlrun/Blockchain-v0): an agent tunes a proof-of-work
network's gossip, block size and block interval, simulated by the SimPy chain core in `rlrun.envs.chain`.

Step. Apply the action, simulate `step_blocks` expected block intervals at the chosen interval (or a fixed
`step_seconds`), measure that window (`rlrun.envs.chain.metrics`). An episode is `episode_steps` steps on
a fresh simulation; `reset` first runs `warmup_steps` windows at the initial setting (flood relay,
`initial_block_size_mb`, `initial_block_interval_s`) so the first observation describes a running network.
The topology is redrawn from the episode seed at each reset unless `topology_seed` fixes it. Transaction
demand is exogenous: it has a random stream of its own (spawned from the episode's), drawn in fixed chunks of
simulated time, so on one seed every policy faces the same transactions and burst schedule
(`rlrun.envs.chain.mempool.TxWorkload`); mining and relay stay random.

Scenarios. `scenario=<name>` (rlrun.envs.chain.scenarios: bitcoin_2015, bitcoin_2019, litecoin, dogecoin,
ethereum_pow) sets network, transactions, protocol, hashpower and the static setting to a real network of one
era; explicit (non-null) keys still win. `protocol` holds the relay mechanisms (compact blocks, push peers,
miners' relay network, uncles; rlrun.envs.chain.protocol).

Actions.
  action_mode=continuous (DDPG/TD3/SAC): Box[-1, 1]^(K+2) = [neighbors_mask[0:K], block_size_norm,
    block_interval_norm]. Mask slot k > 0 relays new blocks to each node's k-th latency band of peers (see
    `rlrun.envs.chain.gossip`); if no slot is > 0, the slot with the largest value relays (at least one slot
    always relays). K = `relay_slots`.
  action_mode=hybrid (P-DQN): Tuple(Discrete(S), Box[-1, 1]^2): a named gossip strategy from `strategies`
    and [block_size_norm, block_interval_norm].
  Sizes and intervals map from [-1, 1] onto `block_size_mb` and `block_interval_s` ([min, max]) on a log
  scale by default (`action_scale=log`): the useful intervals span 1 s to 10 min, and equal steps of the
  action should mean equal ratios. `action_scale=linear` maps linearly.

Observation (each scaled to [0, 1]):
  latency_to_peers_mean   mean link latency to the peers blocks are relayed to / 500 ms
  mempool_depth           log(1 + pending MB) / log(1 + transactions.mempool_max_mb)
  available_bandwidth     1 - bandwidth_utilisation of the last window
  recent_orphan_rate      orphan_rate of the last window
  recent_throughput       confirmed tx/s of the last window / (2 * transactions.rate_tps)
  observation=extended appends: log(1+latency)/log(1+86400 s), the same for latency_p95,
  log(1+prop_time_p90)/log(1+600 s), the block size and interval in force on [0, 1] of their ranges,
  blocks found / (2 * step_blocks), and (1 + sin, 1 + cos)/2 of the time of day (for the daily pattern).

Reward (seed's MAP form, its alpha/beta/gamma named for what they weigh): r = -latency_weight * latency_min
+ throughput_weight * throughput_tpm - orphan_weight * orphan_rate with latency
in minutes, throughput in confirmed transactions per minute and orphan_rate a fraction. The throughput term
counts confirmations only up to the window's offered load (expected arrivals per second, info
`offered_load`): a step lasts step_blocks intervals, so without the cap a slow step that lets transactions
pile up followed by a 1-second-interval step that confirms them in a few seconds would earn a huge
"throughput" every other step, and alternating would beat any steady setting. info `throughput` is the
uncapped rate.

Scale: with the defaults (latency_weight 1, throughput_weight 3e-3, orphan_weight 10; reward=blockchain) and
3 tx/s of demand, ~0.9 MB blocks every ~18 s (100 nodes, flood) give latency 19 s, 3 tx/s and 1.7% stale
blocks: -0.32 + 0.50 - 0.17, the three terms of one size. Bitcoin-like settings (1 MB / 600 s) give 18 min
of latency (-18 per step).
The terms are reported in info as reward_latency, reward_throughput, reward_orphan.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlrun.envs.chain import metrics as chain_metrics
from rlrun.envs.chain import scenarios as chain_scenarios
from rlrun.envs.chain.gossip import STRATEGIES, RelayPlan, slot_plan, strategy_plan
from rlrun.envs.chain.mempool import TxWorkload, TxWorkloadSpec
from rlrun.envs.chain.network import Network, NetworkSpec
from rlrun.envs.chain.pow import PowChain, make_hashpower
from rlrun.envs.chain.protocol import ProtocolSpec
from rlrun.envs.chain.spec import choice, integer, number
from rlrun.envs.chain.tables import POOL_HASHPOWER
from rlrun.envs.rewards import BlockchainReward, as_reward
from rlrun.errors import ConfigError

#: Bitcoin's protocol settings: ~1 MB blocks every 600 s, flooded to every peer (the static baseline)
BITCOIN_LIKE = {"block_size_mb": 1.0, "block_interval_s": 600.0, "strategy": "flood"}
OBS_BASIC = ["latency_to_peers_mean", "mempool_depth", "available_bandwidth", "recent_orphan_rate",
             "recent_throughput"]
OBS_EXTENDED = OBS_BASIC + ["latency", "latency_p95", "prop_time_p90", "block_size", "block_interval",
                            "blocks_found", "day_sin", "day_cos"]


def _range(value: Any, key: str, default: tuple[float, float]) -> tuple[float, float]:
    if value is None:
        return default
    if isinstance(value, str) or not hasattr(value, "__len__") or len(value) != 2:
        raise ConfigError(f"{key} must be [min, max], got {value!r}")
    lo = number(value[0], f"{key}[0]", low=0.0, low_open=True)
    hi = number(value[1], f"{key}[1]", low=0.0, low_open=True)
    if hi < lo:
        raise ConfigError(f"{key} must be [min, max] with min <= max, got {[lo, hi]}")
    return lo, hi


class BlockchainEnv(gym.Env):
    metadata = {"render_modes": []}
    tensorboard_layout = {
        "blockchain": {
            "reward terms": ["Multiline",
                             ["env/reward_latency", "env/reward_throughput", "env/reward_orphan"]],
            "confirmation latency (s)": ["Multiline", ["env/latency", "env/latency_p95"]],
            "throughput (tx/s)": ["Multiline", ["env/throughput"]],
            "orphan rate": ["Multiline", ["env/orphan_rate", "eval/orphan_rate"]],
            "block propagation (s)": ["Multiline", ["env/prop_time_p50", "env/prop_time_p90"]],
            "protocol": ["Multiline", ["env/block_size_mb", "env/block_interval_s", "env/relay_fanout"]],
            "mempool": ["Multiline", ["env/mempool_depth", "env/mempool_mb"]],
            "bandwidth": ["Multiline", ["env/bandwidth_utilisation"]],
        },
    }

    def __init__(
        self,
        action_mode: str = "continuous",
        observation: str = "basic",
        episode_steps: int = 50,
        step_blocks: float = 5.0,
        step_seconds: float = 0.0,
        warmup_steps: int = 1,
        relay_slots: int = 8,
        strategies: list[str] | None = None,
        nearest_k: int = 4,
        random_fanout: int = 4,
        inter_region_k: int = 2,
        block_size_mb: list[float] | None = None,
        block_interval_s: list[float] | None = None,
        action_scale: str = "log",
        initial_block_size_mb: float = 1.0,
        initial_block_interval_s: float = 60.0,
        hashpower: list[float] | None = None,
        network: dict | None = None,
        transactions: dict | None = None,
        topology_seed: int | None = None,
        reward: dict | None = None,
        scenario: str | None = None,
        protocol: dict | None = None,
    ) -> None:
        p = "env"
        self.scenario = None if scenario is None else str(scenario)
        static = (BITCOIN_LIKE["block_size_mb"], BITCOIN_LIKE["block_interval_s"])
        if self.scenario is not None:
            sc = chain_scenarios.get(self.scenario, f"{p}.scenario")
            network = chain_scenarios.merged(sc.network, network)
            transactions = chain_scenarios.merged(sc.transactions, transactions)
            protocol = chain_scenarios.merged(sc.protocol, protocol)
            hashpower = sc.hashpower if hashpower is None else hashpower
            static = (sc.block_size_mb, sc.block_interval_s)
        #: the static (block size MB, interval s) setting: Bitcoin-like, or the scenario's own
        self.static_setting = static
        self.action_mode = choice(action_mode, f"{p}.action_mode", ("continuous", "hybrid"))
        self.observation_kind = choice(observation, f"{p}.observation", ("basic", "extended"))
        self.episode_steps = integer(episode_steps, f"{p}.episode_steps", low=1)
        self.step_blocks = number(step_blocks, f"{p}.step_blocks", low=0.0, low_open=True)
        self.step_seconds = number(step_seconds, f"{p}.step_seconds", low=0.0)
        self.warmup_steps = integer(warmup_steps, f"{p}.warmup_steps", low=0)
        self.relay_slots = integer(relay_slots, f"{p}.relay_slots", low=1)
        strategies = list(strategies) if strategies is not None else list(STRATEGIES)
        if not strategies:
            raise ConfigError(f"{p}.strategies must name at least one of: {', '.join(STRATEGIES)}")
        for i, s in enumerate(strategies):
            choice(s, f"{p}.strategies[{i}]", STRATEGIES)
        self.strategies = strategies
        self.nearest_k = integer(nearest_k, f"{p}.nearest_k", low=1)
        self.random_fanout = integer(random_fanout, f"{p}.random_fanout", low=1)
        self.inter_region_k = integer(inter_region_k, f"{p}.inter_region_k", low=0)
        self.size_range = _range(block_size_mb, f"{p}.block_size_mb", (0.1, 8.0))
        self.interval_range = _range(block_interval_s, f"{p}.block_interval_s", (1.0, 600.0))
        self.action_scale = choice(action_scale, f"{p}.action_scale", ("log", "linear"))
        self.initial_size_mb = number(initial_block_size_mb, f"{p}.initial_block_size_mb", low=0.0,
                                      low_open=True)
        self.initial_interval_s = number(initial_block_interval_s, f"{p}.initial_block_interval_s", low=0.0,
                                         low_open=True)
        hp = list(POOL_HASHPOWER) if hashpower is None else list(hashpower)
        if not hp:
            raise ConfigError(f"{p}.hashpower must list at least one miner's relative hash power")
        self.hashpower = [number(v, f"{p}.hashpower[{i}]", low=0.0, low_open=True) for i, v in enumerate(hp)]
        self.net_spec = NetworkSpec.from_config(network, f"{p}.network")
        self.tx_spec = TxWorkloadSpec.from_config(transactions, f"{p}.transactions")
        self.protocol = ProtocolSpec.from_config(protocol, f"{p}.protocol")
        self.topology_seed = None if topology_seed is None else integer(topology_seed, f"{p}.topology_seed")
        self.reward = as_reward(reward, BlockchainReward)

        k = self.relay_slots
        if self.action_mode == "continuous":
            self.action_space = spaces.Box(-1.0, 1.0, shape=(k + 2,), dtype=np.float32)
        else:
            self.action_space = spaces.Tuple(
                (spaces.Discrete(len(self.strategies)), spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)))
        self.obs_names = OBS_BASIC if self.observation_kind == "basic" else OBS_EXTENDED
        self.observation_space = spaces.Box(0.0, 1.0, shape=(len(self.obs_names),), dtype=np.float32)

        self._fixed_net: Network | None = None
        self.sim: PowChain | None = None
        self._plans: dict[Any, RelayPlan] = {}
        self._t = 0
        self._last: dict[str, float] = {}
        self._applied = (self.initial_size_mb, self.initial_interval_s)
        self._plan_latency = 0.0

    # ---- action decoding ----------------------------------------------------------------------------
    def _to_range(self, u: float, lo: float, hi: float) -> float:
        f = (float(np.clip(u, -1.0, 1.0)) + 1.0) / 2.0
        if self.action_scale == "log":
            return lo * (hi / lo) ** f
        return lo + f * (hi - lo)

    def _to_unit(self, x: float, lo: float, hi: float) -> float:
        if hi == lo:
            return 0.0
        if self.action_scale == "log":
            return math.log(x / lo) / math.log(hi / lo)
        return (x - lo) / (hi - lo)

    def _plan(self, key: Any) -> RelayPlan:
        plan = self._plans.get(key)
        if plan is None:
            assert self.sim is not None
            if isinstance(key, str):
                plan = strategy_plan(self.sim.net, key, nearest_k=self.nearest_k, fanout=self.random_fanout,
                                     inter_region_k=self.inter_region_k)
            else:
                plan = slot_plan(self.sim.net, key)
            self._plans[key] = plan
        return plan

    def default_action(self) -> Any:
        """Bitcoin-like settings as an action (flood relay, 1 MB, 600 s; clipped into the configured
        ranges): what `agent=static` plays, the default configuration a trained policy must beat."""
        size = float(np.clip(self.static_setting[0], *self.size_range))
        interval = float(np.clip(self.static_setting[1], *self.interval_range))
        params = np.array([2.0 * self._to_unit(size, *self.size_range) - 1.0,
                           2.0 * self._to_unit(interval, *self.interval_range) - 1.0], dtype=np.float32)
        params = np.clip(params, -1.0, 1.0)
        if self.action_mode == "continuous":
            return np.concatenate([np.ones(self.relay_slots, dtype=np.float32), params])
        k = self.strategies.index("flood") if "flood" in self.strategies else 0
        return k, params

    def decode_action(self, action: Any) -> tuple[float, float, Any]:
        """(block size in MB, block interval in s, relay plan key) for an action; rejects non-finite input."""
        if self.action_mode == "continuous":
            a = np.asarray(action, dtype=np.float64)
            if a.size != self.relay_slots + 2:
                raise ValueError(f"BlockchainEnv.step expects an action of {self.relay_slots + 2} numbers "
                                 f"([neighbors_mask x{self.relay_slots}, block_size, block_interval]), "
                                 f"got shape {a.shape}")
            a = a.reshape(-1)
            if not np.all(np.isfinite(a)):
                raise ValueError(f"BlockchainEnv.step got a non-finite action {a.tolist()}")
            mask = a[: self.relay_slots] > 0.0
            if not mask.any():
                mask[int(np.argmax(a[: self.relay_slots]))] = True
            key: Any = tuple(bool(m) for m in mask)
            size_u, interval_u = a[-2], a[-1]
        else:
            try:
                k, x = action
                x = np.asarray(x, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                raise ValueError(f"BlockchainEnv.step (hybrid) expects (strategy_id, [block_size, "
                                 f"block_interval]), got {action!r}") from None
            if x.size != 2 or not np.all(np.isfinite(x)):
                raise ValueError(f"BlockchainEnv.step got a non-finite or misshaped parameter vector "
                                 f"{x.tolist()} (expects 2 finite numbers)")
            if isinstance(k, float) and not math.isfinite(k):
                raise ValueError(f"BlockchainEnv.step got a non-finite strategy id {k!r}")
            ki = int(k)
            if not 0 <= ki < len(self.strategies):
                raise ValueError(f"BlockchainEnv.step got strategy id {ki}; valid ids are 0.."
                                 f"{len(self.strategies) - 1} ({', '.join(self.strategies)})")
            key = self.strategies[ki]
            size_u, interval_u = x
        size_mb = self._to_range(size_u, *self.size_range)
        interval_s = self._to_range(interval_u, *self.interval_range)
        return size_mb, interval_s, key

    # ---- simulation ---------------------------------------------------------------------------------
    def new_simulation(self, rng: np.random.Generator) -> PowChain:
        """A fresh simulation of this env's network, workload and protocol (what `reset` runs; `rlrun
        simulate` drives one directly)."""
        if self.topology_seed is not None:
            if self.protocol.pool_outbound:  # pools add links to the topology: never reuse a mutated one
                net = Network(self.net_spec, np.random.default_rng(self.topology_seed))
            else:
                if self._fixed_net is None:
                    self._fixed_net = Network(self.net_spec, np.random.default_rng(self.topology_seed))
                net = self._fixed_net
        else:
            net = Network(self.net_spec, rng)
        hp = make_hashpower(net.n, self.hashpower, rng)
        workload = TxWorkload(self.tx_spec, net.n, rng.spawn(1)[0])  # demand is exogenous: a stream of its own
        return PowChain(net, workload, hp, rng, mempool_max_bytes=self.tx_spec.mempool_max_mb * 1e6,
                        protocol=self.protocol)

    def _window(self, size_mb: float, interval_s: float, key: Any) -> dict[str, float]:
        sim = self.sim
        assert sim is not None
        plan = self._plan(key)
        sim.configure(size_mb * 1e6, interval_s, plan)
        self._applied = (size_mb, interval_s)
        self._plan_latency = plan.mean_latency()
        duration = self.step_seconds if self.step_seconds > 0 else self.step_blocks * interval_s
        t0 = sim.now
        marks = chain_metrics.mark(sim, self._last)
        sim.mempool.maintain(t0)
        events0, messages0 = sim.events, sim.messages
        sim.add_transactions(t0, t0 + duration)
        sim.run_until(t0 + duration)
        m = chain_metrics.measure(sim, marks)
        m["offered_load"] = sim.workload.last_expected / duration
        m["block_size_mb"] = size_mb
        m["block_interval_s"] = interval_s
        m["relay_fanout"] = plan.mean_fanout()
        m["latency_to_peers_ms"] = self._plan_latency * 1000.0
        m["sim_time"] = sim.now
        m["events"] = float(sim.events - events0)
        m["messages"] = float(sim.messages - messages0)
        return m

    def _observe(self, m: dict[str, float]) -> np.ndarray:
        tx_rate = self.tx_spec.rate_tps if self.tx_spec.rate_tps > 0 else 1.0
        vals = [
            m["latency_to_peers_ms"] / 500.0,
            math.log1p(m["mempool_mb"]) / math.log1p(self.tx_spec.mempool_max_mb),
            1.0 - m["bandwidth_utilisation"],
            m["orphan_rate"],
            m["throughput"] / (2.0 * tx_rate),
        ]
        if self.observation_kind == "extended":
            day = 2.0 * math.pi * (m["sim_time"] % 86400.0) / 86400.0
            vals += [
                math.log1p(m["latency"]) / math.log1p(86400.0),
                math.log1p(m["latency_p95"]) / math.log1p(86400.0),
                math.log1p(m["prop_time_p90"]) / math.log1p(600.0),
                self._to_unit(m["block_size_mb"], *self.size_range),
                self._to_unit(m["block_interval_s"], *self.interval_range),
                m["blocks_found"] / (2.0 * self.step_blocks),
                (1.0 + math.sin(day)) / 2.0,
                (1.0 + math.cos(day)) / 2.0,
            ]
        return np.clip(np.asarray(vals, dtype=np.float32), 0.0, 1.0)

    # ---- Gymnasium API ------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng = np.random.default_rng(int(self.np_random.integers(2**63)))
        self.sim = self.new_simulation(rng)
        self._plans = {}
        self._t = 0
        self._last = {}
        m: dict[str, float] | None = None
        for _ in range(self.warmup_steps):
            m = self._window(self.initial_size_mb, self.initial_interval_s, "flood")
            self._last = m
        if m is None:
            plan = self._plan("flood")
            self.sim.configure(self.initial_size_mb * 1e6, self.initial_interval_s, plan)
            m = {k: 0.0 for k in ("mempool_mb", "bandwidth_utilisation", "orphan_rate", "throughput",
                                  "latency", "latency_p95", "prop_time_p90", "blocks_found", "sim_time",
                                  "offered_load")}
            m.update(latency_to_peers_ms=plan.mean_latency() * 1000.0, block_size_mb=self.initial_size_mb,
                     block_interval_s=self.initial_interval_s)
        return self._observe(m), {"sim_time": self.sim.now}

    def step(self, action: Any):
        if self.sim is None:
            raise RuntimeError("BlockchainEnv.step called before reset()")
        size_mb, interval_s, key = self.decode_action(action)
        m = self._window(size_mb, interval_s, key)
        self._last = m
        terms = self.reward.terms(m)
        reward = float(sum(terms.values()))
        self._t += 1
        info = {**m, **terms}
        if self.action_mode == "hybrid":
            info["strategy"] = float(self.strategies.index(key))
        truncated = self._t >= self.episode_steps
        return self._observe(m), reward, False, truncated, info
