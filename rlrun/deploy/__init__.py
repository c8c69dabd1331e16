"""Deployment-side pieces of a consensus-tuning policy (seed 001).

- `fixedpoint`      int64 fixed-point (scale 10^8) MLP format and a pure-integer inference engine
- `detmath`         deterministic math on 18-digit fixed-point decimals (IntegerSqrt, ln, exp, sigmoid, ...)
- `modes`           agent modes Shadow / Conservative / Autonomous / Paused and the bounded parameter update
- `circuit_breaker` the block-time health check that reverts RL-tuned parameters
- `rollup`          informational rollup advisory functions and `rlrun advise`
- `export`          `rlrun export run=<dir> format=fixedpoint [--verify]` and the fixed-point agent wrapper
"""
