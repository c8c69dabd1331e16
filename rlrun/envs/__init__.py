"""Gymnasium environments shipped with rlrun, registered as rlrun/<Name>-v0. What an rlrun env promises and
the optional hooks it may offer (default_action, get_state/set_state, eval_kwargs, tensorboard_layout, the
log_dir argument) are documented once, in rlrun.envs.protocol.RlrunEnv."""

from gymnasium.envs.registration import register, registry

_ENVS = {
    "rlrun/Reach-v0": "rlrun.envs.reach:ReachEnv",
    "rlrun/Blockchain-v0": "rlrun.envs.blockchain:BlockchainEnv",
    "rlrun/Consensus-v0": "rlrun.envs.consensus:ConsensusEnv",
    "rlrun/Inverter-v0": "rlrun.envs.inverter:InverterEnv",
    "rlrun/Relay-v0": "rlrun.envs.relay:RelayEnv",
    "rlrun/HybridTargets-v0": "rlrun.envs.hybrid_targets:HybridTargetsEnv",
}

for _id, _entry in _ENVS.items():
    if _id not in registry:
        register(id=_id, entry_point=_entry)
