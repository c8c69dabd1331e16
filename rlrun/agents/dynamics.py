"""`agent=dynamics`: train seed 002's forward dynamics model from a dataset inside rlrun's one training loop.

    rlrun collect env=inverter agent=heuristic episodes=40
    rlrun train env=inverter agent=dynamics dataset=<dir>/dataset.npz total_steps=3000 eval_every=0
    rlrun dynamics-report run=<train run dir>      # k-step error table vs persistence

How it fits the trainer: it is an offline agent (`offline = True`), so the trainer counts gradient updates
and calls update() once per step. The trainer's replay batches are single transitions in random order,
while the LSTM needs time-ordered windows, so this agent reads the same dataset itself (`dataset: ${dataset}`
in its config, the run's `dataset=` path) and cuts it into windows of `seq_len` strides of `lookahead_steps`
inside episodes (rlrun.models.dynamics.split_sequences); update() ignores the replay batch and takes one
gradient step on `batch_size` such windows. The last `val_fraction` of the episodes are held out; every
`val_every` updates the validation loss drives ReduceLROnPlateau and the best-on-validation weights are kept
(`best_model`, saved in every checkpoint), and the k-step export error of model and persistence is logged.

The loss is the seed's weighted one with each squared error replaced by a Huber term (`huber_delta`, in
observation units; 0.01 = 50 W at obs_scale_w 5000; null gives the seed's plain MSE). The k-step error is
heavy-tailed: appliances switching and cloud edges inside the 6 s make its std ~190-230 W, while in steady
operation it is tens of W. Under MSE those unpredictable jumps dominate the loss, and the model was left with a
40-100 W per-phase bias exactly where a zero-export controller operates (net power near 0), which is
worth only ~3 % of the MSE; the policy trained through it then exported more than the PI on held-out days.
The Huber loss fits the jumps linearly and the small errors quadratically, so the common case is fitted
precisely (tests/test_dynamics.py, the slow test's docstring has the numbers).

act() makes the model a controller, so the trainer's evaluation in the environment means something.
`controller: policy` (default): model-based policy learning, the seed's "train the policy with the forward
model". A tanh MLP policy pi(s) is trained by backpropagating through the frozen best model: on dataset
states it minimises the expected per-phase cost at t+k,
    E[export_weight * max(net, 0) + import_weight * max(-net, 0)],  net ~ N(model's prediction, sigma_p^2),
where sigma_p is the model's k-step error std on held-out windows, re-measured at every validation pass.
The Gaussian makes the policy hedge by the model's own uncertainty: its optimum puts the predicted net power
at the import_weight / (export_weight + import_weight) quantile instead of exactly at zero. Policy steps start
after `policy_start` model updates. `controller: mpc`: one-step model-predictive control instead; it scores
`mpc_candidates` actions (uniform random, plus holding the last command and small steps from it) by the
predicted state k steps ahead and takes the cheapest (predicted export plus over-diversion import).
For observation layouts other than env=inverter's, MPC minimises predicted feature 0.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from rlrun.agents.base import Agent
from rlrun.agents.nets import mlp
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
        huber_delta: float | None = 0.01,
        controller: str = "policy",
        mpc_candidates: int = 64,
        policy_hidden: list[int] = (128, 128),
        policy_lr: float = 3e-4,
        policy_batch_size: int = 256,
        policy_start: int = 500,
        export_weight: float = 1.0,
        import_weight: float = 1.0,
        obs_scale_w: float = 5000.0,
    ) -> None:
        super().__init__(observation_space, action_space, device=device, seed=seed, batch_size=batch_size)
        if not dataset:
            raise ConfigError("agent=dynamics learns from a dataset: set dataset=<path to a collected .npz>")
        for key, val in (("lookahead_steps", lookahead_steps), ("seq_len", seq_len), ("val_every", val_every),
                         ("mpc_candidates", mpc_candidates)):
            if val < 1:
                raise ConfigError(f"agent.{key} must be >= 1, got {val}")
        if controller not in ("policy", "mpc"):
            raise ConfigError(f"agent.controller must be one of ['policy', 'mpc'], got {controller!r}")
        if export_weight < 0 or import_weight < 0 or export_weight + import_weight <= 0:
            raise ConfigError("agent.export_weight and agent.import_weight must be >= 0, not both 0")
        if huber_delta is not None and not huber_delta > 0:
            raise ConfigError(f"agent.huber_delta must be > 0 (observation units) or null for the seed's MSE, "
                              f"got {huber_delta}")
        if not 0.0 < val_fraction < 1.0:
            raise ConfigError(f"agent.val_fraction must be in (0, 1), got {val_fraction}")
        from rlrun.replay.dataset import load_dataset

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
                                       weighted=weighted_loss, huber_delta=huber_delta)
        self.val_every = int(val_every)
        self.controller = controller
        self.mpc_candidates = int(mpc_candidates)
        self.policy = mlp(obs_dim, list(policy_hidden), act_dim, output_activation="tanh").to(self.device)
        self.policy_opt = torch.optim.Adam(self.policy.parameters(), lr=policy_lr)
        self.policy_start = int(policy_start)
        self.policy_batch_size = int(policy_batch_size)
        self.cost_weights = (float(export_weight), float(import_weight))
        self.net_sigma = torch.full((3,), 0.05, device=self.device)  # net-power error std (obs units)
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
            if self.inverter_layout:
                self.net_sigma = net_error_std(self.trainer.best_model, self.val_data).to(self.device)
                out["loss/net_sigma_w"] = float(self.net_sigma.mean()) * self.obs_scale
            err = kstep_error(self.trainer.best_model, self.val_data, self.obs_scale, horizon=1,
                              max_windows=1024)
            out["loss/kstep_export_rmse_w"] = err["model_export_rmse_w"][0]
            out["loss/persistence_export_rmse_w"] = err["persistence_export_rmse_w"][0]
        if self.inverter_layout and self.controller == "policy" and self.updates >= self.policy_start:
            out["loss/policy_cost"] = self._policy_step()
        return out

    def _policy_step(self) -> float:
        """One gradient step of the policy through the frozen best model (module docstring)."""
        pos = self.train_data.starts[self.rng.integers(0, len(self.train_data), size=self.policy_batch_size)]
        s = torch.from_numpy(self.train_data.states[pos]).to(self.device)
        model = self.trainer.best_model.eval()
        pred = model(s, self.policy(s))
        w_e, w_i = self.cost_weights
        cost = expected_phase_cost(pred[:, 1:4], self.net_sigma, w_e, w_i).sum(-1).mean() * self.obs_scale / 1000
        self.policy_opt.zero_grad(set_to_none=True)
        cost.backward()
        self.policy_opt.step()
        return float(cost.detach())

    # ---- acting: one-step MPC with the best model ---------------------------------------------------
    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32).reshape(-1)
        if self.controller == "policy" and self.inverter_layout:
            a = self.policy(torch.from_numpy(obs).to(self.device).unsqueeze(0))[0].cpu().numpy()
            if explore:
                a = np.clip(a + self.rng.normal(0.0, 0.05, size=a.shape), -1.0, 1.0)
            return a.astype(np.float32)
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
                "scheduler": t.scheduler, "policy": self.policy, "policy_opt": self.policy_opt}

    def extra_state(self) -> dict[str, Any]:
        return {"best_val": self.trainer.best_val, "updates": self.updates, "net_sigma": self.net_sigma.cpu()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.trainer.best_val = float(state.get("best_val", float("inf")))
        self.updates = int(state.get("updates", 0))
        if "net_sigma" in state:
            self.net_sigma = torch.as_tensor(state["net_sigma"], device=self.device)

    def report(self, horizon: int | None = None) -> dict[str, Any]:
        """k-step error table of the best model vs persistence on the held-out episodes."""
        return kstep_error(self.trainer.best_model, self.val_data, self.obs_scale, horizon=horizon)


def expected_phase_cost(mu: torch.Tensor, sigma: torch.Tensor, w_export: float, w_import: float) -> torch.Tensor:
    """E[w_e max(X, 0) + w_i max(-X, 0)] for X ~ N(mu, sigma^2), elementwise (X: net power, + export).

    Minimised at the quantile Phi(mu / sigma) = w_i / (w_e + w_i): with equal weights the prediction is
    steered to zero, a dearer export moves it to the import side by an amount set by the model's own error.
    """
    z = mu / sigma
    cdf = 0.5 * (1.0 + torch.erf(z / math.sqrt(2.0)))
    pdf = torch.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    e_pos = mu * cdf + sigma * pdf
    e_neg = e_pos - mu  # E[max(-X, 0)] = E[max(X, 0)] - E[X]
    return w_export * e_pos + w_import * e_neg


@torch.no_grad()
def net_error_std(model: ForwardDynamicsModel, data: Any, max_windows: int = 2048) -> torch.Tensor:
    """Std of the model's k-step error on the per-phase net power (features 1..3) over held-out windows."""
    model.eval()
    dev = next(model.parameters()).device
    idx = np.linspace(0, len(data) - 1, min(len(data), max_windows)).astype(np.int64)
    s, a, y = data.batch(idx, dev)
    err = model(s[:, 0], a[:, 0])[:, 1:4] - y[:, 0, 1:4]
    return err.std(dim=0).clamp_min(1e-4)
