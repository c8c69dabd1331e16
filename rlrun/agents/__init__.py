"""Agents. Each module holds one algorithm; `base.Agent` is the contract the trainer relies on."""
