"""`rlrun dynamics-report run=<dir> [checkpoint=best|last|<path>]`: the k-step error table of an agent=dynamics
run's forward model (open-loop rollout vs persistence, on the held-out episodes of its dataset)."""

from __future__ import annotations

from rlrun.agents.dynamics import DynamicsAgent
from rlrun.commands.args import parse_args
from rlrun.errors import ConfigError
from rlrun.run_dir import RunDir


def dynamics_report_command(argv: list[str]) -> int:
    args = parse_args("dynamics-report", argv, {"run": "run directory", "checkpoint": "best|last|<path>"})
    run = RunDir(args.path("run", "run directory of an agent=dynamics training run"))
    agent = run.build_agent(run.build_env(), args.get("checkpoint", "last"))
    if not isinstance(agent, DynamicsAgent):
        raise ConfigError(f"run {run.path} did not train agent=dynamics")
    rep = agent.report()
    print(f"k = {rep['k']} s, {rep['windows']} held-out windows; RMSE in W, open-loop rollout vs persistence")
    print(f"{'horizon s':>10} {'export model':>13} {'export persist':>15} {'net model':>10} "
          f"{'net persist':>12}")
    for i, h in enumerate(rep["horizon_s"]):
        print(f"{h:>10} {rep['model_export_rmse_w'][i]:>13.1f} {rep['persistence_export_rmse_w'][i]:>15.1f} "
              f"{rep['model_net_rmse_w'][i]:>10.1f} {rep['persistence_net_rmse_w'][i]:>12.1f}")
    return 0


