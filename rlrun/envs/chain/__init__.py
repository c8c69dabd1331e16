"""Shared SimPy chain core.

network.py   regions, link latency, bandwidth, topology, message timing (`Network`, `Transport`)
gossip.py    block relay policies (`RelayPlan`, slot masks, named strategies)
mempool.py   transaction arrivals (`TxWorkload`) and the fee-ordered mempool (`Mempool`)
pow.py       proof-of-work mining, inv/getdata/block propagation and fork choice (`PowChain`); compiled
             where the build could (pow.pxd holds its C types; core.py picks the build that runs)
metrics.py   per-window metrics (orphan_rate, latency, throughput, propagation times, ...)

A consensus engine other than PoW reuses network/gossip/mempool and brings its own block production.
"""

from rlrun.envs.chain.core import select_core
from rlrun.envs.chain.gossip import STRATEGIES, RelayPlan, slot_plan, strategy_plan
from rlrun.envs.chain.mempool import Mempool, TxWorkload, TxWorkloadSpec
from rlrun.envs.chain.network import Network, NetworkSpec, Transport

select_core()  # before anything imports pow (core.py)
from rlrun.envs.chain.pow import PowChain, make_hashpower  # noqa: E402

__all__ = [
    "STRATEGIES", "Mempool", "Network", "NetworkSpec", "PowChain", "RelayPlan", "Transport", "TxWorkload",
    "TxWorkloadSpec", "make_hashpower", "slot_plan", "strategy_plan",
]
