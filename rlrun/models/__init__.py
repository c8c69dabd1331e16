"""Learned models used by the agents (seed 002's forward dynamics model)."""
