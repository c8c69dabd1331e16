"""Routing baselines for env=relay: `agent=shortest_path` and `agent=random_neighbour`.

Both are agents that read the relay observation (no access to the env or its graph), so evaluation compares
them with learned routers on the very same seeds, e.g. `rlrun train env=relay agent=qrouting
baseline=shortest_path`, or trains nothing and is evaluated on its own.

shortest_path: static shortest path by RTT. The env computes it with networkx (Dijkstra on the base link RTTs)
and marks the next hop in the candidate feature `on_sp`; this agent follows it, so it routes exactly as
networkx's shortest paths do and ignores load, drift and degradation, the classic reference for Q-routing.
With `env.sp_ties=all` several next hops are marked and it draws one per message (equal-cost multipath).
When that link is down it takes the live neighbour minimising link RTT + the neighbour's shortest-path RTT
to the destination (the Bellman choice among what is left). Regional messages get the shortest path inside
their region (the env computes it on the region's subgraph when cross-region hops are forbidden).

random_neighbour: a uniformly random live neighbour (never the one the message came from unless it is the
only one), a floor for every router.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from rlrun.agents.base import Agent
from rlrun.envs.relay.obs import F_DIST, F_ON_SP, F_RTT, RelayObs


class _RelayBaseline(Agent):
    uses_replay = False
    batched_acting = True  # stateless: act_batch acts row by row
    supported_action_spaces = ("discrete",)

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        device: str = "cpu",
        seed: int = 0,
        gamma: float = 0.99,
        batch_size: int = 1,
    ) -> None:
        super().__init__(observation_space, action_space, device=device, seed=seed, gamma=gamma, batch_size=batch_size)
        self.spec = RelayObs(observation_space)

    def update(self, batch: Any) -> dict[str, Any]:
        return {}


class ShortestPathRouter(_RelayBaseline):
    def act(self, obs: np.ndarray, explore: bool) -> int:
        dec = self.spec.decode(obs)
        if len(dec.slots) == 0:
            return max(dec.free_slot, 0)
        on_sp = np.flatnonzero(dec.feats[:, F_ON_SP] > 0.5)
        if len(on_sp) == 1:
            return int(dec.slots[on_sp[0]])
        if len(on_sp) > 1:  # env.sp_ties=all marks every equal-cost next hop: spread messages over them (ECMP)
            return int(dec.slots[on_sp[int(self.rng.integers(len(on_sp)))]])
        return int(dec.slots[int(np.argmin(dec.feats[:, F_RTT] + dec.feats[:, F_DIST]))])


class RandomNeighbourRouter(_RelayBaseline):
    def act(self, obs: np.ndarray, explore: bool) -> int:
        dec = self.spec.decode(obs)
        if len(dec.slots) == 0:
            return max(dec.free_slot, 0)
        choices = dec.slots[dec.cand_ids != dec.prev] if len(dec.slots) > 1 else dec.slots
        return int(self.rng.choice(choices))
