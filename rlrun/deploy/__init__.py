"""Deployment of trained policies (above agents and envs; governance itself is rlrun.governance):

- `fixedpoint`      int64 fixed-point (scale 10^8) MLP format and a pure-integer inference engine
- `export`          the fixed-point export of an actor and the fixed-point agent wrapper (`rlrun export`)
- `controller`      the deployed inverter controller (modes, fallback)
- `rollup`          informational rollup advisory functions (`rlrun advise`)
"""
