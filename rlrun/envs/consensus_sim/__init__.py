"""The BFT proof-of-stake chain behind env=consensus (seed 001), on SimPy; rlrun/envs/consensus.py is its Gym
adapter.

- `chain`      validators' rounds, blocks, commit latency, slashing and jailing (ChainSim)
- `txpool`     gas-priced transactions with price-reactive demand, the mempool
- `validators` stake, reputation and the weighting pools
- `economy`    x/mint inflation and yield-driven delegation
- `observe`    the seed's 25 measurements over an observation window
- `governance` the tuned parameters under agent modes and the circuit breaker
"""
