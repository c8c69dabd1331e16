"""rlrun: a Hydra-driven experiment runner for RL on network, blockchain and energy-control simulators."""

__version__ = "0.1.0"
