"""Gymnasium environments shipped with rlrun, registered as rlrun/<Name>-v0.

Contract every rlrun environment follows (besides the Gymnasium API and `check_env`):
- Domain metrics go in `info` as plain floats (latency, throughput, orphan_rate, export_w, ...). The trainer
  averages every numeric `info` key over an episode and logs it as `env/<key>`; evaluation reports them too.
- Reward weights arrive as a constructor argument (`reward`, from the `reward` config group), never hard-coded.
- `tensorboard_layout` (class attribute): a custom-scalars layout {category: {chart: ["Multiline", [tags]]}}
  so the TensorBoard dashboard groups the env's metrics (e.g. its reward terms side by side).
- Optional `get_state() -> dict` / `set_state(dict)`: plain-Python/ndarray snapshot of the simulator so a
  checkpoint taken mid-episode resumes exactly. Envs without it restart the interrupted episode on resume.
- Same seed -> same trajectory.
"""

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
