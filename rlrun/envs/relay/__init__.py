"""Relay overlay routing (seed 003): `RelayEnv`, registered as rlrun/Relay-v0.

network.py holds the SimPy simulation, env.py the Gym adapter, topology.py the networkx overlays, obs.py the
observation layout and its decoder; the reward formula is rlrun.envs.rewards.RelayReward.
"""

from rlrun.envs.relay.env import RelayEnv

__all__ = ["RelayEnv"]
