"""Named proof-of-work scenarios: a real network of one era, set from physical inputs only.

`env.scenario=<name>` fills the env's `network`, `transactions`, `protocol` and `hashpower` settings and the
static (block size, block interval) setting with the values below; any env.* key set explicitly still wins
(e.g. `env.scenario=bitcoin_2015 env.network.nodes=2000`). With no scenario (the default) the env keeps its
own small training network (100 nodes, SimBlock 2019 tables, plain relay).

Every number is a measured or documented input of that era: node count, SimBlock's latency/bandwidth/region
tables, block size limit and interval, demand (transaction rate x mean size, set so that blocks fill as they
did), validation cost per MB (and per gas for Ethereum), the relay mechanisms then deployed, and mining-pool
shares. Nothing is tuned to hit an output figure; `published` holds the measured outputs the validation table
(`python -m bench calibration`) compares against, each with its source.

Sources
  [simblock]   Aoki et al., "SimBlock: A Blockchain Network Simulator", IEEE INFOCOM workshops 2019; tables in
               simulator/src/main/java/simblock/settings/NetworkConfiguration.java (github.com/dsg-titech/simblock).
  [gervais]    Gervais et al., "On the Security and Performance of Proof of Work Blockchains", ACM CCS 2016,
               Table 1 (public nodes, mining pools, block interval, mean block size, median block propagation
               time t_MBP, stale block rate r_s; measured 2015-2016). NOT VERIFIED against the paper's text: no
               copy of the table was accessible while writing this, so its values are as recalled; the
               authors' simulator [gervais-sim] agrees on the pool counts (16 / 12 / 12).
  [gervais-sim] The same authors' ns-3 simulator, github.com/arthurgervais/Bitcoin-Simulator: the pool shares
               of Bitcoin (16 pools), Litecoin and Dogecoin (12 each) it ships for those networks, and its
               block validation time, 0.174 s for an average 458,263-byte block (0.38 s/MB), and average
               transaction size, 522.4 B.
  [decker]     Decker & Wattenhofer, "Information Propagation in the Bitcoin Network", IEEE P2P 2013 (mean
               12.6 s until a node has a block, 95 % of nodes by 40 s, as others quote it; the median 6.5 s and
               1.69 % forks often cited from it were not verified). Not used in the validation table.
  [bitcoinstats] Decker's continued measurement, bitcoinstats.com/network/propagation (2014-11-17: a block
               reaches 50 % / 90 % of the monitored peers after 4.06 s / 18.0 s).
  [buterin]    Buterin, "More uncle statistics", Ethereum Foundation blog, 2015-09-25 (first 280,000 blocks:
               7.41 % uncles per block, 6.89 % of all blocks).
  [nagayama]   Nagayama, Banno, Shudo, "Identifying Impacts of Protocol and Internet Development on the Bitcoin
               Network", IEEE ISCC 2020 (a simulation, not a measurement: a SimBlock study of 2015-2019;
               compact block relay cut the 50th / 90th percentile block propagation delay by 90.1 % / 87.6 %,
               Internet improvements by 64.5 % / 63.7 %).
  [bitmex]     BitMEX Research's count of stale Bitcoin blocks, March 2020 - March 2021: 17 in ~52,500, 0.03 %
               (as listed by 256k1.dev; seen second-hand only).
  [bip152]     BIP 152 "Compact Block Relay" (6-byte short ids, 3 high-bandwidth peers); in Bitcoin Core since
               0.13 (Aug 2016). FIBRE: bitcoinfibre.org (since 2016); before it, Corallo's Relay Network
               (2013-2017) linked most large pools.
  [ethminer]   cpp-ethereum/ethminer `--farm-recheck` default 500 ms: GPU miners polled their pool for new
               work every 0.5 s, so hash power moved to a new block 0.25 s after the pool had it, on average.
  [geth-2804]  go-ethereum issue #2804 (July 2016, geth 1.4): a node's log shows "commit new work" (building
               the next block to mine) taking 89 / 117 ms for blocks of 6 / 9 transactions, on top of the
               import itself.
  [geth-fetcher] go-ethereum eth/fetcher (geth 1.1 onwards): `arriveTimeout = 500 * time.Millisecond //
               Time allowance before an announced block is explicitly requested`.
  [nomp]       node-stratum-pool / NOMP, pool software used on Litecoin and Dogecoin: without the daemon's
               blocknotify hook it polls for new blocks every 1,000 ms ("blockRefreshInterval" in its example
               configs). Not an input of the scenarios: what the large pools of 2016 ran is not documented,
               so they switch at once (pool_switch_s 0); README's validation section gives the fork rates
               with a 0.5 s switch as a sensitivity.
  [core-0.12]  Bitcoin Core 0.12 release notes: transaction announcements every 5 s on average to inbound and
               2.5 s to outbound peers (Poisson), i.e. ~2.5 s per hop on the paths transactions take.
Pool shares: Bitcoin 2015, Litecoin and Dogecoin use [gervais-sim]'s; Bitcoin 2019 and Ethereum are rounded
readings of the pool-share charts of the period (btc.com 2019, etherscan 2016). They set how concentrated
hash power was, which is what the stale rate depends on, not which pool held what.
Validation costs: Bitcoin 2015 uses [gervais-sim]'s 0.38 s/MB (Bitcoin Core issue #6976, Nov 2015, measured
0.5-1.5 s per ConnectBlock for the 0.11 client, so this is, if anything, low); the others are estimates
from client benchmarks of the era (Bitcoin Core -debug=bench ConnectBlock ~0.1 s/MB after 0.12's
libsecp256k1; geth 1.4-1.5 importing ~10-30 Mgas/s), stated because no study reports them per MB. Each is
one physical input, not fitted to an output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlrun.envs.chain import tables
from rlrun.errors import ConfigError


@dataclass(frozen=True)
class Published:
    """A measured figure of a real network, with where it comes from."""

    value: float
    source: str
    note: str = ""


@dataclass(frozen=True)
class Scenario:
    description: str
    block_size_mb: float
    block_interval_s: float
    network: dict[str, Any]
    transactions: dict[str, Any]
    protocol: dict[str, Any]
    hashpower: list[float]
    published: dict[str, Published] = field(default_factory=dict)


_NET_2015 = {
    "latency_ms": tables.LATENCY_MS_2015,
    "download_mbps": tables.DOWNLOAD_MBPS_2015,
    "upload_mbps": tables.UPLOAD_MBPS_2015,
}

SCENARIOS: dict[str, Scenario] = {
    "bitcoin_2015": Scenario(
        description="Bitcoin 2015-16: 6,000 nodes, SimBlock 2015 tables, 1 MB limit / 600 s, ~0.53 MB blocks, "
                    "full-block relay, Corallo's Relay Network among pools",
        block_size_mb=1.0,
        block_interval_s=600.0,
        network={**_NET_2015, "nodes": 6000, "outbound": 8,
                 "region_shares": tables.REGION_SHARES_BITCOIN_2015,
                 "validation_s_per_mb": 0.38, "validation_base_s": 0.002, "tx_relay_delay_s": 1.0},
        # 1.705 tx/s x 522.4 B ([gervais-sim]) x 600 s + 0.5 kB = 0.535 MB per block ([gervais]: 534.8 kB)
        transactions={"rate_tps": 1.705, "size_mean_bytes": 522.4},
        protocol={"block_relay": "full", "miners_network": True, "miners_network_mbps": 100.0},
        hashpower=[0.289, 0.196, 0.159, 0.133, 0.066, 0.054, 0.029, 0.016, 0.012, 0.012, 0.012, 0.009, 0.005,
                   0.005, 0.002, 0.002],  # [gervais-sim]
        published={
            "orphan_rate": Published(0.0041, "[gervais] Table 1", "stale block rate r_s"),
            "propagation_p50_s": Published(8.7, "[gervais] Table 1", "median block propagation time t_MBP"),
            "block_kb": Published(534.8, "[gervais] Table 1", "mean block size"),
        },
    ),
    "bitcoin_2019": Scenario(
        description="Bitcoin 2019: 10,000 nodes, SimBlock 2019 tables, ~1.25 MB blocks / 600 s, compact blocks "
                    "in high-bandwidth mode (3 push peers), FIBRE among pools",
        block_size_mb=2.0,  # 4M weight units allow ~2 MB of typical (SegWit-mixed) transactions
        block_interval_s=600.0,
        network={"nodes": 10000, "outbound": 8, "validation_s_per_mb": 0.1, "validation_base_s": 0.002,
                 "tx_relay_delay_s": 2.5},
        # ~330,000 tx/day = 3.8 tx/s, ~550 B each: 1.25 MB per block
        transactions={"rate_tps": 3.8, "size_mean_bytes": 550.0},
        protocol={"block_relay": "compact", "push_peers": 3, "miners_network": True,
                  "miners_network_mbps": 100.0},
        hashpower=[0.15, 0.15, 0.14, 0.12, 0.07, 0.07, 0.06, 0.05, 0.04, 0.03, 0.02, 0.01, 0.01],
        published={
            "orphan_rate": Published(0.0003, "[bitmex]", "17 stale blocks in Mar 2020-Mar 2021"),
            "compact_p50_reduction": Published(
                0.901, "[nagayama]", "cut in the 50th-percentile propagation delay due to compact block relay"),
        },
    ),
    "litecoin": Scenario(
        description="Litecoin 2016: 800 nodes, SimBlock 2015 tables and Litecoin region shares, 150 s, "
                    "~6 kB blocks, full-block relay",
        block_size_mb=1.0,
        block_interval_s=150.0,
        network={**_NET_2015, "nodes": 800, "outbound": 8, "region_shares": tables.REGION_SHARES_LITECOIN,
                 "validation_s_per_mb": 0.2, "validation_base_s": 0.002, "tx_relay_delay_s": 1.0},
        # 0.0935 tx/s x 400 B x 150 s = 5.6 kB + 0.5 kB header and coinbase = 6.1 kB ([gervais]: 6.11 kB)
        transactions={"rate_tps": 0.0935, "size_mean_bytes": 400.0},
        protocol={"block_relay": "full"},
        hashpower=[0.366, 0.314, 0.122, 0.072, 0.028, 0.024, 0.022, 0.018, 0.012, 0.010, 0.006, 0.006],
        published={
            "orphan_rate": Published(0.00273, "[gervais] Table 1", "stale block rate r_s"),
            "propagation_p50_s": Published(1.02, "[gervais] Table 1", "t_MBP"),
            "block_kb": Published(6.11, "[gervais] Table 1", "mean block size"),
        },
    ),
    "dogecoin": Scenario(
        description="Dogecoin 2016: 600 nodes, SimBlock 2015 tables and Dogecoin region shares, 60 s, ~8 kB "
                    "blocks, full-block relay",
        block_size_mb=1.0,
        block_interval_s=60.0,
        network={**_NET_2015, "nodes": 600, "outbound": 8, "region_shares": tables.REGION_SHARES_DOGECOIN,
                 "validation_s_per_mb": 0.2, "validation_base_s": 0.002, "tx_relay_delay_s": 1.0},
        # 0.3125 tx/s x 400 B x 60 s = 7.5 kB + 0.5 kB header and coinbase = 8.0 kB ([gervais]: 8 kB)
        transactions={"rate_tps": 0.3125, "size_mean_bytes": 400.0},
        protocol={"block_relay": "full"},
        hashpower=[0.33, 0.26, 0.19, 0.09, 0.03, 0.02, 0.02, 0.02, 0.01, 0.01, 0.01, 0.01],
        published={
            "orphan_rate": Published(0.00619, "[gervais] Table 1", "stale block rate r_s"),
            "propagation_p50_s": Published(0.85, "[gervais] Table 1", "t_MBP"),
            "block_kb": Published(8.0, "[gervais] Table 1", "mean block size"),
        },
    ),
    "ethereum_pow": Scenario(
        description="Ethereum 2015-16 (Frontier/Homestead): 4,000 nodes, SimBlock 2015 tables, 15 s, ~1.5 kB "
                    "blocks of ~50,000 gas per transaction, full block pushed to sqrt(25) = 5 peers, "
                    "uncles (2 per block, 6 generations), hash power on a new block 0.35 s after its pool "
                    "(0.5 s polling, ~0.1 s to build new work), announced blocks requested after 0.5 s",
        block_size_mb=1.0,
        block_interval_s=15.0,
        network={**_NET_2015, "nodes": 4000, "outbound": 12,
                 "region_shares": tables.REGION_SHARES_BITCOIN_2015,
                 "validation_s_per_mb": 0.2, "validation_base_s": 0.002, "tx_relay_delay_s": 0.5},
        # 0.444 tx/s x 150 B x 15 s = 1.0 kB + 0.5 kB header = 1.5 kB ([gervais]: 1.5 kB)
        transactions={"rate_tps": 0.444, "size_mean_bytes": 150.0},
        protocol={"block_relay": "full", "push_peers": 5, "validation_s_per_mgas": 0.05, "gas_per_tx": 50000.0,
                  # pool_switch_s: ethminer's polling (0.25 s on average) + geth building new work (~0.1 s)
                  "max_uncles": 2, "uncle_depth": 6, "pool_switch_s": 0.35, "relay_side_blocks": True,
                  "request_delay_s": 0.5},  # [geth-fetcher]
        hashpower=[0.25, 0.15, 0.13, 0.11, 0.08, 0.07, 0.05, 0.04, 0.04, 0.03, 0.02, 0.02, 0.01],
        published={
            "orphan_rate": Published(0.068, "[gervais] Table 1", "stale block rate r_s"),
            "uncle_rate": Published(0.0741, "[buterin]", "uncles per main-chain block, first 280,000 blocks"),
            "propagation_p50_s": Published(0.5, "[gervais] Table 1", "t_MBP 0.5-0.75 s"),
            "block_kb": Published(1.5, "[gervais] Table 1", "mean block size"),
        },
    ),
}

NAMES: tuple[str, ...] = tuple(SCENARIOS)


def get(name: str, key: str = "env.scenario") -> Scenario:
    if name not in SCENARIOS:
        raise ConfigError(f"{key}={name!r} is not a known scenario; choose one of: {', '.join(NAMES)} "
                          f"(or null for the env's own network)")
    return SCENARIOS[name]


def merged(base: dict[str, Any] | None, override: Any) -> dict[str, Any]:
    """base's settings with every non-null entry of override on top (the user's explicit keys win)."""
    out = dict(base or {})
    if override is not None:
        if not hasattr(override, "items"):
            return override  # not a mapping: leave it to the section's own validation
        out.update({k: v for k, v in override.items() if v is not None})
    return out
