"""Solar inverter export limiting (rlrun/Inverter-v0); the full description is in rlrun.envs.inverter.env.

The offline, model-based pipeline of seed 002 (about 10 min on one CPU core; D = the dataset path):

    rlrun collect env=inverter agent=heuristic episodes=120 out=outputs/collect/inverter-pi
    D=outputs/collect/inverter-pi/dataset.npz
    # forward dynamics model + policy learned through it (seed steps 2 and 6)
    rlrun train env=inverter agent=dynamics dataset=$D total_steps=8000 agent.policy_start=3000 \\
        eval_every=0 hydra.run.dir=outputs/train/inverter-dynamics/pipeline
    rlrun dynamics-report run=outputs/train/inverter-dynamics/pipeline     # k-step error table
    # behaviour-cloning warm start + SAC/CQL(H) from the dataset alone (seed steps 3 and 4)
    rlrun train env=inverter agent=cql dataset=$D total_steps=20000 agent.bc_steps=1000 agent.gamma=0.9 \\
        agent.layer_norm=true agent.actor_hidden=[128,128] agent.critic_hidden=[128,128] \\
        agent.batch_size=128 agent.cql_n_actions=4 eval_every=0 hydra.run.dir=outputs/train/inverter-cql/pipeline
    # online SAC fine-tuning from the CQL checkpoint (seed step 5)
    rlrun train env=inverter agent=cql agent.offline=false agent.cql_alpha=0 learning_starts=0 \\
        agent.init_checkpoint=outputs/train/inverter-cql/pipeline/checkpoints/last.pt agent.gamma=0.9 \\
        agent.layer_norm=true agent.actor_hidden=[128,128] agent.critic_hidden=[128,128] \\
        total_steps=20000 eval_every=0 hydra.run.dir=outputs/train/inverter-sac-finetune/pipeline
    # held-out days: learned policies next to PI and "do nothing", in the simulator and with the model
    rlrun inverter-compare run=outputs/train/inverter-dynamics/pipeline \\
        run=outputs/train/inverter-cql/pipeline run=outputs/train/inverter-sac-finetune/pipeline \\
        checkpoint=last episodes=24 model=outputs/train/inverter-dynamics/pipeline

Measured (24 30-min windows 09:00-16:00 of the test weeks, per window; tests/test_dynamics.py has it as a
slow test): PI exports 0.0366 kWh and imports 0.1080 kWh, agent=dynamics' policy 0.0344 and 0.0832 (-6 %,
-23 %; agent seeds 1 and 2: 0.0351 / 0.0738, 0.0295 / 0.0961), "do nothing" exports 2.16 kWh. Its compliance
is worse: 14.3 % of seconds over the 50 W limit (PI 10.4 %), longest excursion 16 s (PI 12 s). agent=cql and
its SAC fine-tuning, at this CPU budget (20k updates), stay behind the PI (CQL: 0.057 kWh export, 0.114 kWh
import per window; SAC fine-tuned: 0.132 / 0.156). README.md has the table.
"""

from rlrun.envs.inverter.env import InverterEnv, obs_dim, pending_slice

__all__ = ["InverterEnv", "obs_dim", "pending_slice"]
