"""Relay overlay routing (seed 003): `RelayEnv`, registered as rlrun/Relay-v0.

env.py holds the SimPy simulation, topology.py the networkx overlays, obs.py the observation layout.
"""

from rlrun.envs.relay.env import REWARD_DEFAULTS, RelayEnv

__all__ = ["REWARD_DEFAULTS", "RelayEnv"]
