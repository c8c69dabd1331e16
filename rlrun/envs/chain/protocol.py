"""What nodes do with a block beyond the basic inv -> getdata -> block exchange: the relay mechanisms real
networks deployed, the cost of validating a block, and Ethereum's uncles. `env.protocol` holds these; every
default reproduces the plain protocol, so a config without the section simulates exactly what it did before.

block_relay      full: the whole block travels after inv/getdata (Bitcoin before 2016, Litecoin, Dogecoin).
                 compact: BIP 152 low-bandwidth mode: after inv/getdata the sender uploads a compact block
                 (header + coinbase + `short_id_bytes` per transaction); the receiver rebuilds it from its
                 mempool and fetches the transactions it lacks in one more round trip (getblocktxn/blocktxn).
push_peers       each node pushes a block it receives, before validating it, to this many of its peers
                 (drawn once per node) without waiting for a getdata: BIP 152 high-bandwidth mode (3 peers,
                 with block_relay=compact) or Ethereum's devp2p, which sends the full block to sqrt(peers) peers
                 after checking the header and announces it to the rest after importing it. 0 = no push.
miners_network   a FIBRE-like relay network among the mining pools: a pool's new block reaches every other
                 pool one table latency (mean, between their regions) plus its compact encoding and the missing
                 transactions over `miners_network_mbps` later, with no inv/getdata and no validation on the way
                 (Corallo's Relay Network 2013-2017, FIBRE since 2016).
request_delay_s  seconds a node waits after an announcement (inv) before it requests the block, so that a block
                 pushed to it meanwhile makes the request unnecessary: geth's block fetcher waits
                 `arriveTimeout` = 500 ms (eth/fetcher, geth 1.1 onwards); 0 = request at once (Bitcoin).
pool_switch_s    seconds from a pool's node having a new tip until the pool's hashers work on it (new block
                 template pushed to the miners, or miners polling for work); 0 = at once.
pool_outbound    extra outbound connections each mining-pool node opens (pools run well-connected nodes);
                 0 = pools are ordinary nodes.
validation_s_per_mgas  execution time per million gas (Ethereum), added to the per-MB validation time of
                 `env.network`; a block's gas is its transaction count times `gas_per_tx`.
relay_side_blocks  relay every valid block, not only blocks that become the node's tip: Ethereum's clients
                 push a block on once its header checks out, whatever its parent, which is how competing
                 blocks of equal height reach the miners that can reference them as uncles. false = Bitcoin's
                 rule (announce new tips only).
max_uncles, uncle_depth  Ethereum's uncles: a new block references up to max_uncles stale blocks its miner
                 knows, whose parent is one of its last uncle_depth ancestors; 0 = no uncles (Bitcoin).

Missing transactions (compact blocks, miners' network). A transaction created at time c reaches a node after
the network's mean transaction-relay delay `tx_spread_s` (computed from the topology and
`network.tx_relay_delay_s`), so a block that arrives at t lacks exactly its transactions created after
t - tx_spread_s. This is a mean-field rule: it gets the share of missing transactions right on average, not
per node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rlrun.envs.chain.spec import check_keys, choice, integer, number
from rlrun.errors import ConfigError

BLOCK_RELAY = ("full", "compact")

_KEYS = {
    "block_relay", "short_id_bytes", "push_peers", "miners_network", "miners_network_mbps", "pool_switch_s",
    "pool_outbound", "relay_side_blocks", "validation_s_per_mgas", "gas_per_tx", "max_uncles", "uncle_depth",
    "request_delay_s",
}


@dataclass
class ProtocolSpec:
    """What `env.protocol` may hold (see module docstring)."""

    block_relay: str = "full"
    short_id_bytes: int = 6  # BIP 152 short transaction ids
    push_peers: int = 0
    miners_network: bool = False
    miners_network_mbps: float = 100.0
    pool_switch_s: float = 0.0
    pool_outbound: int = 0
    validation_s_per_mgas: float = 0.0
    gas_per_tx: float = 0.0
    relay_side_blocks: bool = False
    max_uncles: int = 0
    uncle_depth: int = 6
    request_delay_s: float = 0.0

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None, prefix: str = "env.protocol") -> ProtocolSpec:
        d = {k: v for k, v in check_keys(cfg, _KEYS, prefix).items() if v is not None}
        spec = cls(**d)
        spec.block_relay = choice(spec.block_relay, f"{prefix}.block_relay", BLOCK_RELAY)
        spec.short_id_bytes = integer(spec.short_id_bytes, f"{prefix}.short_id_bytes", low=1)
        spec.push_peers = integer(spec.push_peers, f"{prefix}.push_peers", low=0)
        if not isinstance(spec.miners_network, bool):
            raise ConfigError(f"{prefix}.miners_network must be true or false, got {spec.miners_network!r}")
        if not isinstance(spec.relay_side_blocks, bool):
            raise ConfigError(f"{prefix}.relay_side_blocks must be true or false, got {spec.relay_side_blocks!r}")
        spec.miners_network_mbps = number(spec.miners_network_mbps, f"{prefix}.miners_network_mbps", low=0.0,
                                          low_open=True)
        spec.pool_switch_s = number(spec.pool_switch_s, f"{prefix}.pool_switch_s", low=0.0)
        spec.request_delay_s = number(spec.request_delay_s, f"{prefix}.request_delay_s", low=0.0)
        spec.pool_outbound = integer(spec.pool_outbound, f"{prefix}.pool_outbound", low=0)
        spec.validation_s_per_mgas = number(spec.validation_s_per_mgas, f"{prefix}.validation_s_per_mgas",
                                            low=0.0)
        spec.gas_per_tx = number(spec.gas_per_tx, f"{prefix}.gas_per_tx", low=0.0)
        spec.max_uncles = integer(spec.max_uncles, f"{prefix}.max_uncles", low=0)
        spec.uncle_depth = integer(spec.uncle_depth, f"{prefix}.uncle_depth", low=1)
        return spec

