"""`agent=qrouting`: seed 003's QRouter, Boyan-Littman Q-routing and a LinUCB router for env=relay
(router.py; one module per variant)."""

from rlrun.agents.qrouting.router import VARIANTS, QRouting
from rlrun.envs.relay.obs import CANDIDATE_FEATURES, RelayObs, Workload

__all__ = ["CANDIDATE_FEATURES", "VARIANTS", "QRouting", "RelayObs", "Workload"]
