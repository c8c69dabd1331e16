"""Seed 002's forward dynamics model f(s_t, a_t) -> s_{t+k}, its training loop and its k-step evaluation.

Architecture (the seed's, kept): encoder Linear -> LayerNorm -> ReLU -> Dropout -> Linear -> LayerNorm ->
ReLU, a 2-layer LSTM, and a predictor head that outputs a *delta*: s_{t+k} = s_t + delta (residual).

What the seed left broken, done here:
- The seed feeds the LSTM sequences of length 1 and restarts it every step, so it never carries history.
  Here the LSTM runs over windows of consecutive strides (s_t, a_t), (s_{t+k}, a_{t+k}), ... and predicts
  s_{t+k}, s_{t+2k}, ... at every position; `predict_trajectory` rolls out the same way, feeding each
  prediction back in and carrying the hidden state, so training and rollout are the same process.
  Called with [batch, dim] tensors the model is the seed's one-step API.
- k (`lookahead_steps`): with env.delay_s = d, the action sent at step t is first visible in the state
  after d + 1 transitions, so the default is k = d + 1 = 6; s_{t+k} is the observation k transitions later.
- Training: the seed's weighted MSE (feature 0 - export - x5, features 1..3 - per-phase net power - x3),
  optionally with Huber terms instead of squares (`huber_delta`; agent=dynamics uses it, see there),
  Adam, grad-norm clip 1.0, ReduceLROnPlateau on the validation loss, the best-on-validation weights kept.
- Evaluation: k-step error against the persistence baseline (s_{t+k} = s_t), the forecast any model must beat.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

Hidden = tuple[torch.Tensor, torch.Tensor]  # LSTM (h, c)


class ForwardDynamicsModel(nn.Module):
    def __init__(
        self,
        state_dim: int = 30,
        action_dim: int = 3,
        hidden_dim: int = 256,
        lstm_hidden: int = 128,
        num_lstm_layers: int = 2,
        lookahead_steps: int = 6,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.state_dim, self.action_dim, self.lookahead_steps = state_dim, action_dim, lookahead_steps
        self.encoder = nn.Sequential(
            nn.Linear(state_dim + action_dim, hidden_dim),
            nn.LayerNorm(hidden_dim),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, hidden_dim // 2),
            nn.LayerNorm(hidden_dim // 2),
            nn.ReLU(),
        )
        self.lstm = nn.LSTM(
            input_size=hidden_dim // 2, hidden_size=lstm_hidden, num_layers=num_lstm_layers, batch_first=True,
            dropout=dropout if num_lstm_layers > 1 else 0.0,
        )
        self.predictor = nn.Sequential(
            nn.Linear(lstm_hidden, hidden_dim // 2), nn.ReLU(), nn.Linear(hidden_dim // 2, state_dim)
        )

    def step(
        self, state: torch.Tensor, action: torch.Tensor, hidden: Hidden | None = None
    ) -> tuple[torch.Tensor, Hidden]:
        """[B, T, D] states and [B, T, A] actions -> predicted [B, T, D] states k steps later, LSTM state."""
        encoded = self.encoder(torch.cat([state, action], dim=-1))
        out, hidden = self.lstm(encoded, hidden)
        return state + self.predictor(out), hidden

    def forward(
        self, state: torch.Tensor, action: torch.Tensor, hidden: Hidden | None = None
    ) -> torch.Tensor:
        """The seed's API: [B, D] -> [B, D] (a fresh LSTM state); [B, T, D] sequences -> [B, T, D]."""
        if state.dim() == 2:
            return self.step(state.unsqueeze(1), action.unsqueeze(1), hidden)[0].squeeze(1)
        return self.step(state, action, hidden)[0]

    @torch.no_grad()
    def predict_trajectory(
        self, state: torch.Tensor, actions: torch.Tensor,
        hidden: Hidden | None = None,
    ) -> torch.Tensor:
        """state [B, D], actions [B, H, A] (one per stride of k steps) -> states [B, H, D] at t+k, ..., t+Hk.
        Autoregressive: each prediction is the next input, the LSTM state is carried."""
        states = []
        current = state.unsqueeze(1)
        for h in range(actions.shape[1]):
            current, hidden = self.step(current, actions[:, h: h + 1], hidden)
            states.append(current)
        return torch.cat(states, dim=1)


class ForwardModelLoss(nn.Module):
    """The seed's weighted MSE: export (feature 0) x5, per-phase power (features 1..3) x3, the rest x1.
    With `huber_delta` (observation units) each squared error becomes a Huber term, 2 * huber(err, delta),
    equal to the squared error inside +-delta and linear outside (see DynamicsAgent's `huber_delta`)."""

    def __init__(self, state_dim: int, weighted: bool = True, huber_delta: float | None = None) -> None:
        super().__init__()
        w = torch.ones(state_dim)
        if weighted:
            w[0] = 5.0
            w[1:4] = 3.0
        self.register_buffer("weights", w)
        self.huber_delta = huber_delta

    def forward(self, pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
        if self.huber_delta:
            err = 2.0 * nn.functional.huber_loss(pred, true, reduction="none", delta=self.huber_delta)
        else:
            err = (pred - true) ** 2
        return (err * self.weights).mean()


# ---- sequence windows from a transitions dataset ------------------------------------------------------

@dataclass
class SequenceData:
    """Windows of `seq_len` strides of k steps inside single episodes of a dataset."""

    states: np.ndarray  # [M, D] observations of all episodes back to back, each episode's final one included
    actions: np.ndarray  # [M, A] the action taken in each of those states (the final row is padding)
    starts: np.ndarray  # indices into `states` of valid window starts
    k: int
    seq_len: int

    def batch(self, idx: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pos = self.starts[idx][:, None] + self.k * np.arange(self.seq_len)[None, :]  # [B, L]
        s = torch.from_numpy(self.states[pos]).to(device)
        a = torch.from_numpy(self.actions[pos]).to(device)
        y = torch.from_numpy(self.states[pos + self.k]).to(device)
        return s, a, y

    def __len__(self) -> int:
        return len(self.starts)


def episode_bounds(data: dict[str, np.ndarray]) -> list[tuple[int, int]]:
    """[start, end) transition indices of each episode (by the `episode` column, else by done flags)."""
    n = len(data["rewards"])
    if "episode" in data:
        ep = np.asarray(data["episode"])
        cuts = np.nonzero(np.diff(ep) != 0)[0] + 1
    else:
        done = np.asarray(data["terminated"], bool) | np.asarray(data.get("truncated", np.zeros(n)), bool)
        cuts = np.nonzero(done[:-1])[0] + 1
    edges = np.concatenate([[0], cuts, [n]])
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def split_sequences(
    data: dict[str, np.ndarray], k: int, seq_len: int, val_fraction: float
) -> tuple[SequenceData, SequenceData]:
    """Train / validation windows; validation holds the last `val_fraction` of the episodes (held out whole,
    so no window straddles the split)."""
    bounds = episode_bounds(data)
    if len(bounds) < 2:
        raise ValueError("the dataset needs at least 2 episodes to hold one out for validation")
    n_val = max(1, int(round(len(bounds) * val_fraction)))
    parts = []
    for group in (bounds[:-n_val], bounds[-n_val:]):
        states, actions, starts, offset = [], [], [], 0
        for a, b in group:
            s = np.concatenate([data["obs"][a:b], data["next_obs"][b - 1: b]]).astype(np.float32)
            act = np.concatenate([data["actions"][a:b], data["actions"][b - 1: b]]).astype(np.float32)
            last_start = len(s) - 1 - k * seq_len  # the last target index must exist
            if last_start >= 0:
                starts.append(offset + np.arange(last_start + 1))
            states.append(s)
            actions.append(act)
            offset += len(s)
        if not starts:
            raise ValueError(f"episodes are shorter than lookahead_steps * seq_len = {k * seq_len} steps")
        parts.append(SequenceData(np.concatenate(states), np.concatenate(actions), np.concatenate(starts),
                                  k, seq_len))
    return parts[0], parts[1]


# ---- training and evaluation --------------------------------------------------------------------------

class DynamicsTrainer:
    """The seed's `train_forward_model`, one gradient step at a time so rlrun's loop can drive it."""

    def __init__(self, model: ForwardDynamicsModel, lr: float = 1e-3, patience: int = 5,
                 grad_clip: float = 1.0, weighted: bool = True, huber_delta: float | None = None) -> None:
        self.model = model
        self.criterion = ForwardModelLoss(model.state_dim, weighted, huber_delta).to(next(model.parameters()).device)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, patience=patience)
        self.grad_clip = grad_clip
        self.best_model = copy.deepcopy(model).requires_grad_(False)
        self.best_val = float("inf")

    def train_step(self, s: torch.Tensor, a: torch.Tensor, y: torch.Tensor) -> float:
        self.model.train()
        loss = self.criterion(self.model(s, a), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=self.grad_clip)
        self.optimizer.step()
        return float(loss.item())

    @torch.no_grad()
    def validate(self, val: SequenceData, batch_size: int = 512, max_windows: int = 4096) -> dict[str, float]:
        """Validation loss (drives the LR schedule and the best-model copy) and the persistence baseline."""
        self.model.eval()
        dev = next(self.model.parameters()).device
        idx = np.linspace(0, len(val) - 1, min(len(val), max_windows)).astype(np.int64)
        tot, tot_p, n = 0.0, 0.0, 0
        for i in range(0, len(idx), batch_size):
            s, a, y = val.batch(idx[i: i + batch_size], dev)
            tot += float(self.criterion(self.model(s, a), y)) * len(s)
            tot_p += float(self.criterion(s, y)) * len(s)
            n += len(s)
        val_loss = tot / n
        self.scheduler.step(val_loss)
        improved = val_loss < self.best_val
        if improved:
            self.best_val = val_loss
            self.best_model.load_state_dict(self.model.state_dict())
        return {"loss/val": val_loss, "loss/val_persistence": tot_p / n, "loss/best_val": self.best_val,
                "loss/lr": self.optimizer.param_groups[0]["lr"]}


@torch.no_grad()
def kstep_error(
    model: ForwardDynamicsModel, data: SequenceData, obs_scale_w: float = 5000.0, horizon: int | None = None,
    max_windows: int = 2048,
) -> dict[str, Any]:
    """k-step prediction error of an open-loop rollout (`predict_trajectory`) vs persistence, on windows.

    Returns per-horizon RMSE of the export feature in W (feature 0 * obs_scale_w), of the per-phase net power
    (features 1..3) in W, and the seed's weighted MSE, for the model and for persistence (s_{t+hk} = s_t).
    """
    model.eval()
    dev = next(model.parameters()).device
    horizon = data.seq_len if horizon is None else min(horizon, data.seq_len)
    idx = np.linspace(0, len(data) - 1, min(len(data), max_windows)).astype(np.int64)
    s, a, y = data.batch(idx, dev)
    pred = model.predict_trajectory(s[:, 0], a[:, :horizon])
    true = y[:, :horizon]
    persist = s[:, :1].expand_as(true)
    crit = ForwardModelLoss(model.state_dim).to(dev)
    out: dict[str, Any] = {"k": data.k, "windows": len(idx),
                           "horizon_s": [data.k * (h + 1) for h in range(horizon)]}
    for name, p in (("model", pred), ("persistence", persist)):
        err = p - true
        out[f"{name}_export_rmse_w"] = (err[..., 0].pow(2).mean(0).sqrt() * obs_scale_w).tolist()
        out[f"{name}_net_rmse_w"] = (err[..., 1:4].pow(2).mean((0, 2)).sqrt() * obs_scale_w).tolist()
        out[f"{name}_weighted_mse"] = [float(crit(p[:, h], true[:, h])) for h in range(horizon)]
    return out


@torch.no_grad()
def predicted_cost(model: ForwardDynamicsModel, states: np.ndarray, actions: np.ndarray,
                   obs_scale_w: float = 5000.0) -> dict[str, float]:
    """Seed 002's validation "with the forward model": score actions by the model's k-step prediction.

    For env=inverter's layout, the predicted per-phase net power (features 1..3) and slave consumption
    (8..10) at t+k give the predicted export sum_p max(net_p, 0) and over-diversion import
    sum_p min(max(-net_p, 0), slave_p), in W, averaged over the given states."""
    model.eval()
    dev = next(model.parameters()).device
    pred = model(torch.as_tensor(states, dtype=torch.float32, device=dev),
                 torch.as_tensor(actions, dtype=torch.float32, device=dev)).cpu().numpy()
    net = pred[:, 1:4] * obs_scale_w
    slave = np.maximum(pred[:, 8:11] * obs_scale_w, 0.0)
    return {"pred_export_w": float(np.maximum(net, 0.0).sum(1).mean()),
            "pred_over_diversion_w": float(np.minimum(np.maximum(-net, 0.0), slave).sum(1).mean())}
