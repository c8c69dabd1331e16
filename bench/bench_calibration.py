"""Validation table: every named scenario (rlrun/envs/chain/scenarios.py) simulated at its static setting,
next to the published measurements it should reproduce, with 95 % confidence intervals. Prints the markdown
table the README shows. `python -m bench calibration`; BENCH_FULL=1 simulates 5x the blocks.

Stale blocks are rare (0.3-0.6 % on the Bitcoin-family chains), so a counted orphan rate needs thousands of
blocks for a tight interval; `fork_rate_expected` (from the pools' measured delays, see
rlrun/envs/chain/summary.py) is shown beside it because it reaches a tight interval in a few hundred blocks.
Each scenario is one seed; wall time and simulated seconds per wall second are printed per scenario.
"""

from __future__ import annotations

import math
import time

from bench.common import full
from rlrun.commands.simulate import simulate_static
from rlrun.envs.blockchain import BlockchainEnv
from rlrun.envs.chain.scenarios import SCENARIOS

#: settled blocks per scenario (x5 with BENCH_FULL=1): chosen so the whole table takes a few minutes
BLOCKS = {"bitcoin_2015": 300, "bitcoin_2019": 100, "litecoin": 2000, "dogecoin": 2000, "ethereum_pow": 400}
SEED = 1


def _fmt(x: float, ci: list[float] | None, kind: str) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    if kind == "rate":
        text = f"{100 * x:.2f} %"
        if ci and all(math.isfinite(c) for c in ci):
            text += f" [{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]"
        return text
    text = f"{x:.2f}" if kind == "s" else f"{x:.1f}"
    if ci and all(math.isfinite(c) for c in ci):
        text += f" [{ci[0]:.2f}, {ci[1]:.2f}]" if kind == "s" else f" [{ci[0]:.1f}, {ci[1]:.1f}]"
    return text


def _published(value: float, kind: str) -> str:
    return f"{100 * value:.3g} %" if kind == "rate" else f"{value:g}"


def main() -> None:
    rows = ["| scenario | figure | published (source) | rlrun, 95 % CI | rlrun / published |", "|---|---|---|---|---|"]
    speed = []
    for name, sc in SCENARIOS.items():
        blocks = BLOCKS[name] * (5 if full() else 1)
        env = BlockchainEnv(scenario=name)
        t0 = time.perf_counter()
        r = simulate_static(env, blocks, SEED)
        speed.append(f"  {name}: {r['blocks']} settled blocks on {r['nodes']} nodes in "
                     f"{time.perf_counter() - t0:.0f} s wall, {r['sim_s_per_wall_s']:,.0f} simulated s per wall s")
        figures = [
            ("orphan_rate", "orphan (stale) rate, counted", "rate", r["orphan_rate"], r["orphan_rate_ci95"]),
            ("orphan_rate", "fork rate expected from pools' delays", "rate", r["fork_rate_expected"],
             r["fork_rate_expected_ci95"]),
            ("uncle_rate", "uncles per main-chain block", "rate", r["uncle_rate"], r["uncle_rate_ci95"]),
            ("propagation_p50_s", "block propagation to 50 % of nodes, median (s)", "s", r["propagation_p50_s"],
             r["propagation_p50_s_ci95"]),
            ("block_kb", "mean block size (kB)", "kb", r["block_kb"], [1e3 * c * env.static_setting[0]
                                                                         for c in r["block_fill_ci95"]]),
        ]
        for key, label, kind, value, ci in figures:
            pub = sc.published.get(key)
            if pub is None:
                if key == "propagation_p50_s" or (key == "orphan_rate" and "counted" in label):
                    rows.append(f"| {name} | {label} | none | {_fmt(value, ci, kind)} | |")
                continue
            ratio = value / pub.value if pub.value else math.nan
            note = f", {pub.note}" if pub.note else ""
            rows.append(f"| {name} | {label} | {_published(pub.value, kind)} ({pub.source}{note}) | "
                        f"{_fmt(value, ci, kind)} | {ratio:.2f} |")
        p90 = _fmt(r["propagation_p90_s"], r["propagation_p90_s_ci95"], "s")
        rows.append(f"| {name} | block propagation to 90 % of nodes, median (s) | | {p90} | |")
        if name == "bitcoin_2015":  # how much the relay network does in the model
            alone = simulate_static(BlockchainEnv(scenario=name, protocol={"miners_network": False}),
                                    max(50, blocks // 3), SEED)
            rows.append(f"| {name} | fork rate expected without the miners' relay network | | "
                        f"{_fmt(alone['fork_rate_expected'], alone['fork_rate_expected_ci95'], 'rate')} | |")
            for switch in (1.0, 3.0):  # sensitivity: pools' time to build and push new work (not sourced)
                slow = simulate_static(BlockchainEnv(scenario=name, protocol={"pool_switch_s": switch}),
                                       max(50, blocks // 3), SEED)
                rows.append(f"| {name} | fork rate expected with pools switching {switch:g} s after their node | | "
                            f"{_fmt(slow['fork_rate_expected'], slow['fork_rate_expected_ci95'], 'rate')} | |")
        pub = sc.published.get("compact_p50_reduction")
        if pub is not None:  # the same network, seed and blocks with full-block relay and no push: the same
            # block times and transactions (mining and demand have their own streams), so the cut is paired
            plain = BlockchainEnv(scenario=name, protocol={"block_relay": "full", "push_peers": 0})
            base = simulate_static(plain, blocks, SEED)
            cut = 1.0 - r["propagation_p50_s"] / base["propagation_p50_s"]
            rows.append(f"| {name} | p50 propagation cut by compact blocks (vs full relay: "
                        f"{base['propagation_p50_s']:.2f} s) | {100 * pub.value:.1f} % ({pub.source}, {pub.note}) | "
                        f"{100 * cut:.1f} % | {cut / pub.value:.2f} |")
    print("\n".join(rows))
    print("\nspeed (one seed each):")
    print("\n".join(speed))


if __name__ == "__main__":
    main()
