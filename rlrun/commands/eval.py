"""`rlrun eval run=<dir> [episodes=N] [seed=S] [checkpoint=best|last|<path>] [inference=float|fixedpoint]
[env.<key>=value ...]`: evaluate a trained run deterministically, next to its baseline, and write the result
as JSON into the run directory."""

from __future__ import annotations

import json

import torch

from rlrun.build import build_baseline
from rlrun.commands.args import parse_args
from rlrun.deploy.export import INFERENCE_MODES, wrap_for_inference
from rlrun.errors import CheckpointError
from rlrun.evaluate import compare, evaluate_policy, format_comparison, format_result, key_metrics
from rlrun.run_dir import RunDir

KEYS = {"run": "run directory", "episodes": "N", "checkpoint": "best|last|<path>",
        "seed": "first evaluation seed", "inference": "float|fixedpoint"}



def eval_command(argv: list[str]) -> int:
    args = parse_args("eval", argv, KEYS, overrides="env")
    run = RunDir(args.path("run", "run directory"))
    run.override_env(args.overrides)
    episodes = args.integer("episodes", int(run.cfg.eval_episodes), minimum=1)
    seed = args.integer("seed", int(run.cfg.eval_seed))
    inference = args.choice("inference", "float", INFERENCE_MODES)
    torch.set_num_threads(int(run.cfg.torch_threads))
    env = run.build_env(evaluation="test", log_dir=run.path / "eval_cli")  # training selected on "val"
    agent = wrap_for_inference(run.build_agent(env, args.get("checkpoint", "best")), inference)
    ckpt_path = run.checkpoint_path
    assert ckpt_path is not None
    result = evaluate_policy(env, agent, episodes, seed)
    result["split"] = "test"  # the env's test split (eval_kwargs["test"]) and eval_seed
    result["checkpoint"] = str(ckpt_path)
    result["step"] = run.step
    print(format_result(f"eval on the test split ({ckpt_path.name}, step {run.step})", result, max_metrics=20,
                        first=key_metrics(env)))
    baseline = build_baseline(run.cfg, env)
    if baseline is not None:
        result["baseline"] = {**compare(result, evaluate_policy(env, baseline, episodes, seed), run.cfg.baseline),
                              "split": "test"}
        print(format_comparison(result["baseline"]))
    suffix = "" if inference == "float" else f"_{inference}"
    out = run.path / f"eval_{ckpt_path.stem}_seed{seed}_n{episodes}{suffix}.json"
    try:
        out.write_text(json.dumps(result, indent=2))
    except OSError as e:
        raise CheckpointError(f"cannot write {out} ({e.strerror or e}); the result above was not saved") from None
    print(f"wrote {out}")
    return 0
