"""Governance of RL-tuned chain parameters (seed 001), used by the consensus simulator and by deployment:

- `modes`           agent modes Shadow / Conservative / Autonomous / Paused and the bounded parameter update
- `circuit_breaker` the block-time health check that reverts RL-tuned parameters
- `detmath`         deterministic math on 18-digit fixed-point decimals (IntegerSqrt, ln, exp, sigmoid, ...)
"""
