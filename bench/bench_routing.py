"""Relay routing: decisions per second of the tabular Q-router, and the env=relay results table.

`make bench` (main): routing decisions per second of rlrun's QRouting.act (decode the observation, filter,
score, epsilon-greedy) next to a literal port of seed 003's QRouter.select_next_hop (per-hop feature lists,
mean/min pooling, a hashed state, dict lookups) on the same recorded decisions, plus the throughput of a
whole online training step (env step + act + update) for context.

`python -m bench.bench_routing table` prints the results table of the issue's quality bar (several
minutes): (a) low load, (b) high load, (c) a link degrading mid-episode, for shortest path, a random
neighbour and the Q-routing variants, all on the same evaluation seeds.

`python -m bench.bench_routing boyan_littman [ticks]` reproduces Boyan & Littman's experiment: mean delivery
time vs load (0.5 to 3.5 new messages per tick) on their 6x6 grid, for shortest path, tabular Q-routing and
the Boyan-Littman variant, each from a cold start in one run (see `cold_start_row`).
"""

from __future__ import annotations

import math
import random
import sys
import time

import numpy as np

from bench.common import print_table, set_threads
from rlrun.agents.qrouting import QRouting
from rlrun.agents.routing_baselines import RandomNeighbourRouter, ShortestPathRouter
from rlrun.envs.relay import RelayEnv
from rlrun.replay.buffer import Batch

QCLASSES = ["best-effort", "regional", "backbone"]


class SeedQRouter:
    """Seed 003's pseudocode, as written (with the obvious helpers filled in)."""

    def __init__(self, neighbors: dict, epsilon: float = 0.02) -> None:
        self.neighbors = neighbors  # hop -> metrics dict
        self.Q: dict = {}
        self.epsilon = epsilon

    def select_next_hop(self, src, dst, candidates, workload):
        feats = [self._features(hop, workload) for hop in candidates]
        state = self._encode_state(feats, workload)
        if random.random() < self.epsilon:
            choice = random.choice(candidates)
            scores = {hop: 0.0 for hop in candidates}
            scores[choice] = 1.0
            return choice, scores
        scores = {}
        best_hop, best_q = None, -float("inf")
        for hop in candidates:
            q = self.Q.get((state, hop), 0.0)
            scores[hop] = q
            if q > best_q:
                best_q, best_hop = q, hop
        return best_hop or random.choice(candidates), scores

    def _features(self, hop, workload):
        m = self.neighbors[hop]
        one_hot = [1.0 if workload["qclass"] == c else 0.0 for c in QCLASSES]
        return [
            m["rtt"] / 100.0,
            m["loss"],
            m["jitter"] / 20.0,
            m["price"] / 5.0,
            m["reputation"],
            1.0 if m["region"] == workload["region_hint"] else 0.0,
            *one_hot,
            math.log1p(workload["size"]),
            min(workload["ttl"] / 4000.0, 1.0),
        ]

    def _encode_state(self, feats_list, workload):
        n = len(feats_list)
        mean_feats = [sum(col) / n for col in zip(*feats_list, strict=True)]
        min_feats = [min(col) for col in zip(*feats_list, strict=True)]
        return hash((*mean_feats, *min_feats))


def record_decisions(env: RelayEnv, n: int) -> list[np.ndarray]:
    router = ShortestPathRouter(env.observation_space, env.action_space)
    obs, _ = env.reset(seed=0)
    out = []
    while len(out) < n:
        out.append(obs)
        obs, _, _, truncated, _ = env.step(router.act(obs, False))
        if truncated:
            obs, _ = env.reset()
    return out


def seed_inputs(env: RelayEnv, agent: QRouting, decisions: list[np.ndarray]) -> list[tuple]:
    """The same decisions as the seed's select_next_hop arguments (per-hop metrics looked up by id)."""
    rows = []
    for obs in decisions:
        d = agent.spec.decode(obs)
        neighbors = {}
        for hop, f in zip(d.cand_ids.tolist(), d.feats, strict=True):
            neighbors[hop] = {
                "rtt": f[0] * 100.0,
                "loss": f[1],
                "jitter": f[2] * 20.0,
                "price": f[3] * 5.0,
                "reputation": f[4],
                "region": int(env.net.region[hop]),
            }
        workload = {
            "qclass": d.workload.qclass,
            "size": d.workload.size_bytes,
            "ttl": 1000.0,
            "region_hint": d.dst_region,
        }
        rows.append((d.node, d.dst, d.cand_ids.tolist(), workload, neighbors))
    return rows


def parse_for_seed(v: list[float], layout, region: np.ndarray) -> tuple:
    """Plain-Python reading of one relay observation into the seed's select_next_hop arguments."""
    c, f = layout.context, layout.n_feat
    node, dst = round(v[c] * 4096) - 1, round(v[c + 1] * 4096) - 1
    w = layout.workload
    qclass = QCLASSES[[v[w], v[w + 1], v[w + 2]].index(1.0)]
    workload = {
        "qclass": qclass,
        "size": math.expm1(v[w + 3] * math.log1p(1 << 20)),
        "ttl": 1000.0,
        "region_hint": round(v[c + 5] * 4096) - 1,
    }
    cands, neighbors = [], {}
    for i in range(layout.max_degree):
        if v[layout.mask + i] > 0.5:
            hop = round(v[layout.cand_ids + i] * 4096) - 1
            row = v[layout.cand + i * f : layout.cand + (i + 1) * f]
            cands.append(hop)
            neighbors[hop] = {
                "rtt": row[0] * 100.0,
                "loss": row[1],
                "jitter": row[2] * 20.0,
                "price": row[3] * 5.0,
                "reputation": row[4],
                "region": int(region[hop]),
            }
    return node, dst, cands, workload, neighbors


def main() -> None:
    set_threads(1)
    env = RelayEnv(load=300.0, episode_ms=10000.0)
    agent = QRouting(env.observation_space, env.action_space, eps_start=0.02, seed=0)
    decisions = record_decisions(env, 20000)
    for obs in decisions[:2000]:  # fill the table a little so lookups hit
        agent.act(obs, True)
    t0 = time.perf_counter()
    for obs in decisions:
        agent.act(obs, True)
    ours = len(decisions) / (time.perf_counter() - t0)

    inputs = seed_inputs(env, agent, decisions)
    routers: dict = {}
    random.seed(0)
    t0 = time.perf_counter()
    for node, dst, cands, workload, neighbors in inputs:
        router = routers.setdefault(node, SeedQRouter(neighbors))
        router.neighbors = neighbors
        router.select_next_hop(node, dst, cands, workload)
    ref = len(inputs) / (time.perf_counter() - t0)
    # the seed's router fed from the same observations: it must first read them into its inputs
    layout = env.layout
    t0 = time.perf_counter()
    for obs in decisions:
        node, dst, cands, workload, neighbors = parse_for_seed(obs.tolist(), layout, env.net.region)
        router = routers.setdefault(node, SeedQRouter(neighbors))
        router.neighbors = neighbors
        router.select_next_hop(node, dst, cands, workload)
    ref_obs = len(decisions) / (time.perf_counter() - t0)

    # a whole online step, as the trainer runs it: env.step + act + update(batch of 1)
    train_agent = QRouting(env.observation_space, env.action_space, eps_start=0.02, seed=0)
    obs, _ = env.reset(seed=1)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 3.0:
        a = train_agent.act(obs, True)
        nxt, r, _, truncated, _ = env.step(a)
        train_agent.update(_batch(obs, a, r, nxt))
        obs = nxt if not truncated else env.reset()[0]
        steps += 1
    online = steps / (time.perf_counter() - t0)
    print_table(
        [
            ("tabular router, 6x6 grid, 20k recorded decisions", "decisions/s", "", ""),
            ("rlrun QRouting.act (decode obs + filters + scores)", f"{ours:,.0f}", "", ""),
            ("seed 003 QRouter.select_next_hop, inputs prebuilt", f"{ref:,.0f}", "", ""),
            ("seed 003 QRouter, reading the same observations", f"{ref_obs:,.0f}", "", ""),
            ("ratio rlrun / seed (same observations)", f"{ours / ref_obs:.2f}x", "", ""),
            ("ratio rlrun / seed (seed without parsing)", f"{ours / ref:.2f}x", "", ""),
            ("online training step (env.step + act + update)", f"{online:,.0f}", "", ""),
        ]
    )


def _batch(obs, action, reward, next_obs) -> Batch:
    return Batch.single(obs, [action], reward, next_obs, terminated=False, discount=0.8)


# ---- the results table ---------------------------------------------------------------------------------


def run_episode(env: RelayEnv, agent, *, seed: int, learn: bool, record: list | None = None) -> dict:
    obs, info = env.reset(seed=seed)
    while True:
        t = env.now_ms
        action = agent.act(obs, learn)
        nxt, reward, _, truncated, info = env.step(action)
        if learn:
            agent.update(_batch(obs, action, reward, nxt))
        if record is not None:
            record.append((t, info["delivered"], info["dropped"], info.get("delivery_ms", np.nan)))
        obs = nxt
        if truncated:
            if learn:
                agent.on_episode_end()
            return info


def routers(env: RelayEnv) -> dict:
    kw = {"eps_start": 0.05, "eps_decay": 0.9999, "seed": 0}
    return {
        "shortest_path": (ShortestPathRouter(env.observation_space, env.action_space), False),
        "random_neighbour": (RandomNeighbourRouter(env.observation_space, env.action_space, seed=0), False),
        "qrouting tabular (seed)": (QRouting(env.observation_space, env.action_space, **kw), True),
        "qrouting boyan_littman": (
            QRouting(env.observation_space, env.action_space, variant="boyan_littman", **kw),
            True,
        ),
        "qrouting bandit (LinUCB)": (QRouting(env.observation_space, env.action_space, variant="bandit", **kw), True),
        "qrouting linear": (QRouting(env.observation_space, env.action_space, variant="linear", **kw), True),
    }


def steady_state(load: float, episodes: int, episode_ms: float) -> list[tuple]:
    env = RelayEnv(load=load, episode_ms=episode_ms)
    rows = []
    for name, (agent, learns) in routers(env).items():
        t0 = time.perf_counter()
        for ep in range(episodes if learns else 0):
            run_episode(env, agent, seed=ep, learn=True)
        m = run_episode(env, agent, seed=100, learn=False)
        rows.append(
            (
                name,
                m["delivery_ratio"],
                m["delivery_ms_mean"],
                m["delivery_ms_p95"],
                m["hops_mean"],
                m["cost_per_mb"],
                time.perf_counter() - t0,
            )
        )
    return rows


def degradation(load: float = 150.0) -> list[tuple]:
    healthy = RelayEnv(load=load, episode_ms=10000.0)
    degraded = RelayEnv(
        load=load,
        episode_ms=25000.0,
        degrade_at_ms=5000.0,
        degrade_link=[15, 21],
        degrade_rtt_factor=10.0,
        degrade_loss=0.3,
    )
    windows = [(0.0, 5000.0), (5000.0, 7000.0), (15000.0, 25000.0)]
    rows = []
    for name, (agent, learns) in routers(healthy).items():
        if name == "random_neighbour":
            continue
        for ep in range(3 if learns else 0):
            run_episode(healthy, agent, seed=ep, learn=True)
        rec: list = []
        run_episode(degraded, agent, seed=100, learn=learns, record=rec)
        r = np.array(rec)
        cells = []
        for lo, hi in windows:
            m = (r[:, 0] >= lo) & (r[:, 0] < hi)
            ratio = r[m, 1].sum() / (r[m, 1].sum() + r[m, 2].sum())
            cells.append(f"{ratio:.3f} / {np.nanmean(r[m, 3]):.0f}")
        rows.append((name, *cells))
    return rows


def table() -> None:
    set_threads(1)
    head = "| router | delivery ratio | mean delivery ms | P95 ms | hops | cost per MB | wall s |"
    rule = "|---|---|---|---|---|---|---|"
    for title, load, episodes, ep_ms in (
        ("(a) low load, 50 msg/s", 50.0, 3, 5000.0),
        ("(b) high load, 380 msg/s", 380.0, 5, 10000.0),
    ):
        print(
            f"\n{title} - 6x6 grid, one {ep_ms / 1000:.0f} s evaluation episode (seed 100, greedy); learners "
            f"first trained online for {episodes} episodes of {ep_ms / 1000:.0f} s\n\n{head}\n{rule}"
        )
        for name, ratio, mean, p95, hops, cost, wall in steady_state(load, episodes, ep_ms):
            print(f"| {name} | {ratio:.3f} | {mean:.1f} | {p95:.1f} | {hops:.2f} | {cost:.2f} | {wall:.0f} |")
    print(
        "\n(c) link 15-21 gets 10x RTT and 30% loss at t = 5 s, 150 msg/s, learners keep learning online "
        "(pre-trained 3 x 10 s on the healthy grid); cells: delivery ratio / mean delivery ms of the decisions "
        "taken in the window\n\n| router | 0-5 s (before) | 5-7 s | 15-25 s |\n|---|---|---|---|"
    )
    for row in degradation():
        print("| " + " | ".join(row) + " |")


# ---- Boyan & Littman's experiment ----------------------------------------------------------------------

BL_LOADS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5)  # new messages per tick
BL_CAP = 1000  # messages in the network at once; more are refused at their source (counted)
NO_TTL = {k: [1e9, 1e9] for k in QCLASSES}


def bl_env(load_per_tick: float, ticks: float, decide_at: str) -> RelayEnv:
    """The classic set-up in rlrun's terms: 1 tick = 1 ms, no TTL or hop limit, one class of message, and
    the reward reduced to delivery time (latency only) so that tabular Q-learning with gamma = 1 estimates
    exactly what Boyan-Littman's variant does."""
    return RelayEnv(
        topology="boyan_littman",
        load=load_per_tick * 1000.0,
        episode_ms=ticks,
        ttl_ms=NO_TTL,
        class_mix=[1.0, 0.0, 0.0],
        max_hops=100000,
        max_in_flight=BL_CAP,
        decide_at=decide_at,
        reward={"success_bonus": 0.0},
    )


def bl_routers(env: RelayEnv) -> dict:
    """Greedy learners (no epsilon) from empty tables; unseen hops start at the distance prior."""
    greedy = {"eps_start": 0.0, "eps_end": 0.0, "alpha": 0.5, "seed": 0}
    return {
        "shortest path": (ShortestPathRouter(env.observation_space, env.action_space), False),
        "tabular": (QRouting(env.observation_space, env.action_space, gamma=1.0, cold_start=0.0, **greedy), True),
        "Boyan-Littman": (QRouting(env.observation_space, env.action_space, variant="boyan_littman", **greedy), True),
    }


def cold_start_row(load: float, ticks: float, decide_at: str) -> dict[str, tuple[float, float, float]]:
    """Per router: (mean delivery ticks of the messages delivered in the second half of one cold-start run,
    share of offered messages refused at the cap, messages in flight at the end)."""
    out = {}
    env = bl_env(load, ticks, decide_at)
    for name, (agent, learns) in bl_routers(env).items():
        rec: list[tuple[float, float]] = []
        obs, _ = env.reset(seed=0)
        while True:
            action = agent.act(obs, learns)
            nxt, reward, _, truncated, info = env.step(action)
            if learns:
                agent.update(_batch(obs, action, reward, nxt))
            if info["delivered"]:
                rec.append((env.now_ms, info["delivery_ms"]))
            obs = nxt
            if truncated:
                break
        r = np.array(rec)
        late = r[r[:, 0] >= ticks / 2, 1]
        out[name] = (float(late.mean()) if len(late) else float("nan"), info["rejected_ratio"], info["in_flight"])
    return out


def boyan_littman_table(ticks: float = 4000.0) -> None:
    set_threads(1)
    for decide_at in ("dequeue", "arrival"):
        print(
            f"\nBoyan-Littman 6x6 grid, decide_at={decide_at}, one {ticks:.0f}-tick run per cell from a cold start, "
            f"cap {BL_CAP} in flight; cells: mean delivery ticks over the second half / % refused at the cap / "
            "in flight at the end\n\n| load (msg/tick) | shortest path | tabular Q-routing | Boyan-Littman |\n"
            "|---|---|---|---|",
            flush=True,
        )
        for load in BL_LOADS:
            row = cold_start_row(load, ticks, decide_at)
            cells = [f"{m:.1f} / {100 * rej:.0f} % / {fl:.0f}" for m, rej, fl in row.values()]
            print(f"| {load} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["table"]:
        table()
    elif sys.argv[1:2] == ["boyan_littman"]:
        boyan_littman_table(float(sys.argv[2]) if len(sys.argv) > 2 else 4000.0)
    else:
        main()
