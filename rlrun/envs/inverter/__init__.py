"""Solar inverter export limiting (rlrun/Inverter-v0); the full description is in rlrun.envs.inverter.env."""

from rlrun.envs.inverter.env import InverterEnv, obs_dim, pending_slice

__all__ = ["InverterEnv", "obs_dim", "pending_slice"]
