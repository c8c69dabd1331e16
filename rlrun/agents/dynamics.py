"""`agent=dynamics`: train seed 002's forward dynamics model from a dataset inside rlrun's one training loop.

    rlrun collect env=inverter agent=heuristic episodes=40
    rlrun train env=inverter agent=dynamics dataset=<dir>/dataset.npz total_steps=3000 eval_every=0
    python -m rlrun.agents.dynamics run=<train run dir>      # k-step error table vs persistence

How it fits the trainer: it is an offline agent (`offline = True`), so the trainer counts gradient updates
and calls update() once per step. The trainer's replay batches are single transitions in random order,
while the LSTM needs time-ordered windows, so this agent reads the same dataset itself (`dataset: ${dataset}`
in its config, the run's `dataset=` path) and cuts it into windows of `seq_len` strides of `lookahead_steps`
inside episodes (rlrun.models.dynamics.split_sequences); update() ignores the replay batch and takes one
gradient step on `batch_size` such windows. The last `val_fraction` of the episodes are held out; every
`val_every` updates the validation loss drives ReduceLROnPlateau and the best-on-validation weights are kept
(`best_model`, saved in every checkpoint), and the k-step export error of model and persistence is logged.

act() makes the model a controller, so the trainer's periodic evaluation in the environment means something:
one-step model-predictive control with the seed's objective. From the current state it scores
`mpc_candidates` actions (uniform random, plus holding the last command and small steps from it) by the
predicted state k steps ahead and picks the one with the least predicted export plus over-diversion import
(per phase: max(net, 0) + min(max(-net, 0), slave)). For observation layouts other than env=inverter's it
minimises predicted feature 0.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from rlrun.agents.base import Agent
from rlrun.errors import ConfigError
from rlrun.models.dynamics import DynamicsTrainer, ForwardDynamicsModel, kstep_error, split_sequences

N_FIXED, N_TAIL = 11, 4  # env=inverter observation layout


class DynamicsAgent(Agent):
    offline = True
    uses_replay = False
    supported_action_spaces = ("box",)

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        device: str = "cpu",
        seed: int = 0,
        dataset: str | None = None,
        lookahead_steps: int = 6,
        seq_len: int = 8,
        hidden_dim: int = 256,
        lstm_hidden: int = 128,
        num_lstm_layers: int = 2,
        dropout: float = 0.1,
        lr: float = 1e-3,
        batch_size: int = 64,
        val_fraction: float = 0.2,
        val_every: int = 250,
        patience: int = 5,
        grad_clip: float = 1.0,
        weighted_loss: bool = True,
        mpc_candidates: int = 64,
        obs_scale_w: float = 5000.0,
    ) -> None:
        super().__init__(observation_space, action_space, device=device, seed=seed, batch_size=batch_size)
        if not dataset:
            raise ConfigError("agent=dynamics learns from a dataset: set dataset=<path to a collected .npz>")
        for key, val in (("lookahead_steps", lookahead_steps), ("seq_len", seq_len), ("val_every", val_every),
                         ("mpc_candidates", mpc_candidates)):
            if val < 1:
                raise ConfigError(f"agent.{key} must be >= 1, got {val}")
        if not 0.0 < val_fraction < 1.0:
            raise ConfigError(f"agent.val_fraction must be in (0, 1), got {val_fraction}")
        from rlrun.build import load_dataset

        data = load_dataset(str(dataset))
        obs_dim = int(np.prod(observation_space.shape))
        act_dim = int(np.prod(action_space.shape))
        if data["obs"].shape[1] != obs_dim or data["actions"].shape[1] != act_dim:
            raise ConfigError(f"dataset {dataset} has obs/action dims {data['obs'].shape[1]}/"
                              f"{data['actions'].shape[1]}, the env has {obs_dim}/{act_dim}")
        try:
            self.train_data, self.val_data = split_sequences(data, lookahead_steps, seq_len, val_fraction)
        except ValueError as e:
            raise ConfigError(f"dataset {dataset}: {e}") from None
        torch.manual_seed(seed)
        self.model = ForwardDynamicsModel(obs_dim, act_dim, hidden_dim, lstm_hidden, num_lstm_layers,
                                          lookahead_steps, dropout).to(self.device)
        self.trainer = DynamicsTrainer(self.model, lr=lr, patience=patience, grad_clip=grad_clip,
                                       weighted=weighted_loss)
        self.val_every = int(val_every)
        self.mpc_candidates = int(mpc_candidates)
        self.obs_scale = float(obs_scale_w)
        self.updates = 0
        delay = (obs_dim - N_FIXED - N_TAIL) / 3
        self.inverter_layout = act_dim == 3 and delay == int(delay) and delay >= 1
        self.delay_s = int(delay) if self.inverter_layout else 0

    # ---- learning -----------------------------------------------------------------------------------
    def update(self, batch: Any) -> dict[str, Any]:
        del batch  # single shuffled transitions; the LSTM trains on time-ordered windows (module docstring)
        idx = self.rng.integers(0, len(self.train_data), size=self.batch_size)
        loss = self.trainer.train_step(*self.train_data.batch(idx, self.device))
        self.updates += 1
        out: dict[str, Any] = {"loss/dynamics": loss}
        if self.updates % self.val_every == 0:
            out.update(self.trainer.validate(self.val_data))
            err = kstep_error(self.trainer.best_model, self.val_data, self.obs_scale, horizon=1,
                              max_windows=1024)
            out["loss/kstep_export_rmse_w"] = err["model_export_rmse_w"][0]
            out["loss/persistence_export_rmse_w"] = err["persistence_export_rmse_w"][0]
        return out

    # ---- acting: one-step MPC with the best model ---------------------------------------------------
    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32).reshape(-1)
        n = self.mpc_candidates
        cand = self.rng.uniform(-1.0, 1.0, size=(n, int(np.prod(self.action_space.shape))))
        if self.inverter_layout:
            last = obs[N_FIXED + 3 * (self.delay_s - 1): N_FIXED + 3 * self.delay_s] * 2.0 - 1.0
            steps = np.array([0.0, 0.02, -0.02, 0.05, -0.05, 0.1, -0.1, 0.2, -0.2])[: min(9, n)]
            cand[: len(steps)] = np.clip(last[None, :] + steps[:, None], -1.0, 1.0)
        cand = cand.astype(np.float32)
        state = torch.from_numpy(np.repeat(obs[None, :], n, axis=0)).to(self.device)
        model = self.trainer.best_model.eval()
        pred = model(state, torch.from_numpy(cand).to(self.device)).cpu().numpy()
        if self.inverter_layout:
            net, slave = pred[:, 1:4], np.maximum(pred[:, 8:11], 0.0)
            cost = np.maximum(net, 0.0).sum(1) + np.minimum(np.maximum(-net, 0.0), slave).sum(1)
        else:
            cost = pred[:, 0]
        a = cand[int(np.argmin(cost))]
        if explore:
            a = np.clip(a + self.rng.normal(0.0, 0.05, size=a.shape), -1.0, 1.0)
        return a.astype(np.float32)

    # ---- persistence --------------------------------------------------------------------------------
    def modules(self) -> dict[str, Any]:
        t = self.trainer
        return {"model": self.model, "best_model": t.best_model, "optimizer": t.optimizer,
                "scheduler": t.scheduler}

    def extra_state(self) -> dict[str, Any]:
        return {"best_val": self.trainer.best_val, "updates": self.updates}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.trainer.best_val = float(state.get("best_val", float("inf")))
        self.updates = int(state.get("updates", 0))

    def report(self, horizon: int | None = None) -> dict[str, Any]:
        """k-step error table of the best model vs persistence on the held-out episodes."""
        return kstep_error(self.trainer.best_model, self.val_data, self.obs_scale, horizon=horizon)


def report_command(args: list[str]) -> int:
    """`python -m rlrun.agents.dynamics run=<dir> [checkpoint=best|last]`: print the k-step error table."""
    from rlrun.agents.dynamics import DynamicsAgent as Agent  # not __main__'s copy under python -m
    from rlrun.build import build_agent, build_env
    from rlrun.checkpoint import load_checkpoint, resolve_checkpoint
    from rlrun.evaluate import load_run_config, parse_keyvalues

    kv = parse_keyvalues(args, {"run": "run directory", "checkpoint": "best|last|<path>"})
    if "run" not in kv:
        raise ConfigError("needs run=<run directory of an agent=dynamics training run>")
    run_dir = Path(kv["run"])
    cfg = load_run_config(run_dir)
    env = build_env(cfg)
    agent = build_agent(cfg, env)
    if not isinstance(agent, Agent):
        raise ConfigError(f"run {run_dir} did not train agent=dynamics")
    agent.load_state_dict(load_checkpoint(resolve_checkpoint(run_dir, kv.get("checkpoint", "last")))["agent"])
    rep = agent.report()
    print(f"k = {rep['k']} s, {rep['windows']} held-out windows; RMSE in W, open-loop rollout vs persistence")
    print(f"{'horizon s':>10} {'export model':>13} {'export persist':>15} {'net model':>10} "
          f"{'net persist':>12}")
    for i, h in enumerate(rep["horizon_s"]):
        print(f"{h:>10} {rep['model_export_rmse_w'][i]:>13.1f} {rep['persistence_export_rmse_w'][i]:>15.1f} "
              f"{rep['model_net_rmse_w'][i]:>10.1f} {rep['persistence_net_rmse_w'][i]:>12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(report_command(sys.argv[1:]))
