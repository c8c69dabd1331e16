"""`agent=dqn`: double DQN (van Hasselt et al. 2016) for Discrete actions, with optional action masking.

Q(s) -> n values from an MLP. Acting is epsilon-greedy (epsilon decays linearly from eps_start to eps_end
over eps_decay_steps env steps). Learning regresses Q(s, a) onto
    y = r + discount * (1 - done) * Q_target(s', argmax_{a' valid} Q_online(s', a'))      (double DQN)
or onto max_{a' valid} Q_target(s', a') with double=false; `discount` is gamma^k from the replay buffer, so
n-step returns work unchanged. The target network follows the online one by Polyak averaging every update
(tau < 1) or by a hard copy every `target_update_every` updates (tau = 1). Huber or MSE loss, weighted by
the importance-sampling weights of prioritized replay when present; the absolute TD errors are returned as
"td_error" so `replay=prioritized` can update priorities.

Action masking (`action_mask`): the trainer hands agents only the observation, so an env that has invalid
actions puts its mask (1 = valid) in the LAST n entries of the observation (env=relay does, n = its
Discrete size). `obs_tail` uses that mask; `auto` turns it on when the observation declares it (env=relay's
header: observation_space.high[0] == 0.625 and high[2] * 1000 == n) and off otherwise; `none` never masks.
Masked actions are never chosen, neither when acting nor in the bootstrap max; a state with no valid action
bootstraps from 0.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces

from rlrun.agents.base import Agent
from rlrun.agents.nets import adam, mlp, soft_update
from rlrun.errors import ConfigError
from rlrun.replay.buffer import Batch

MASK_MODES = ("auto", "obs_tail", "none")
LOSSES = ("huber", "mse")
RELAY_MARKER = 0.625


def mask_declared(observation_space: spaces.Box, n: int) -> bool:
    """True when the observation says its last n entries are an action mask (env=relay's header)."""
    high = np.asarray(observation_space.high, dtype=np.float64).reshape(-1)
    return high.shape[0] > 4 + n and abs(high[0] - RELAY_MARKER) < 1e-6 and int(round(high[2] * 1000)) == n


class DQN(Agent):
    batched_acting = True
    supported_action_spaces = ("discrete",)

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        device: str = "cpu",
        seed: int = 0,
        gamma: float = 0.99,
        batch_size: int = 64,
        lr: float = 1e-3,
        hidden: list[int] | None = None,
        layer_norm: bool = False,
        double: bool = True,
        tau: float = 1.0,
        target_update_every: int = 500,
        eps_start: float = 1.0,
        eps_end: float = 0.05,
        eps_decay_steps: int = 10000,
        loss: str = "huber",
        grad_clip: float | None = 10.0,
        action_mask: str = "auto",
    ) -> None:
        super().__init__(observation_space, action_space, device=device, seed=seed, gamma=gamma, batch_size=batch_size)
        if action_mask not in MASK_MODES:
            raise ConfigError(f"agent.action_mask must be one of {', '.join(MASK_MODES)}, got {action_mask!r}")
        if loss not in LOSSES:
            raise ConfigError(f"agent.loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        if not 0 < tau <= 1 or target_update_every < 1:
            raise ConfigError(
                f"agent.tau must be in (0, 1] and agent.target_update_every >= 1, got {tau}, {target_update_every}"
            )
        if not 0 <= eps_end <= eps_start <= 1 or eps_decay_steps < 0:
            raise ConfigError("agent.eps_* need 0 <= eps_end <= eps_start <= 1 and eps_decay_steps >= 0")
        if lr <= 0:
            raise ConfigError(f"agent.lr must be > 0, got {lr}")
        self.n = int(action_space.n)
        self.start = int(action_space.start)  # env action = start + index of the Q output
        self.obs_dim = int(observation_space.shape[0])
        if action_mask == "obs_tail" and self.obs_dim <= self.n:
            raise ConfigError(f"agent.action_mask=obs_tail needs more than {self.n} observation entries")
        self.masked = action_mask == "obs_tail" or (action_mask == "auto" and mask_declared(observation_space, self.n))
        self.q = mlp(
            self.obs_dim, list(hidden if hidden is not None else [256, 256]), self.n, layer_norm=layer_norm
        ).to(self.device)
        self.q_target = copy.deepcopy(self.q)
        for p in self.q_target.parameters():
            p.requires_grad_(False)
        self.opt = adam(self.q.parameters(), lr)
        self.double = bool(double)
        self.tau = float(tau)
        self.target_update_every = int(target_update_every)
        self.eps_start, self.eps_end, self.eps_decay_steps = float(eps_start), float(eps_end), int(eps_decay_steps)
        self.epsilon = self.eps_start
        self.loss = loss
        self.grad_clip = grad_clip
        self.updates = 0

    # ---- acting -------------------------------------------------------------------------------------
    def valid(self, obs: np.ndarray) -> np.ndarray:
        """Boolean validity of each action for one observation (all True without masking)."""
        if not self.masked:
            return np.ones(self.n, dtype=bool)
        return np.asarray(obs, dtype=np.float32).reshape(-1)[-self.n :] > 0.5

    def act_batch(self, obs: np.ndarray, explore: bool) -> list[int]:
        """Epsilon-greedy over the valid actions of each row; one Q forward pass for the greedy rows."""
        obs = np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)
        actions: list[int | None] = []
        for row in obs:
            choices = np.flatnonzero(self.valid(row))
            if len(choices) == 0:  # nothing is valid: any action (env=relay treats it as a refusal)
                actions.append(self.start)
            elif explore and self.rng.random() < self.epsilon:
                actions.append(self.start + int(self.rng.choice(choices)))
            else:
                actions.append(None)
        greedy = [i for i, a in enumerate(actions) if a is None]
        if greedy:
            with torch.no_grad():
                q = self.q(torch.as_tensor(obs[greedy], device=self.device)).cpu().numpy()
            for row, i in enumerate(greedy):
                q[row][~self.valid(obs[i])] = -np.inf
                actions[i] = self.start + int(np.argmax(q[row]))
        return actions

    def on_step(self, step: int) -> None:
        if self.eps_decay_steps == 0:
            self.epsilon = self.eps_end
            return
        frac = min(step / self.eps_decay_steps, 1.0)
        self.epsilon = self.eps_start + frac * (self.eps_end - self.eps_start)

    # ---- learning -----------------------------------------------------------------------------------
    def _next_value(self, next_obs: torch.Tensor) -> torch.Tensor:
        q_target = self.q_target(next_obs)
        if self.masked:
            valid = next_obs[:, -self.n :] > 0.5
            any_valid = valid.any(dim=1)
        else:
            valid = torch.ones_like(q_target, dtype=torch.bool)
            any_valid = torch.ones(q_target.shape[0], dtype=torch.bool, device=q_target.device)
        if self.double:
            q_online = self.q(next_obs).masked_fill(~valid, -torch.inf)
            best = q_online.argmax(dim=1, keepdim=True)
            value = q_target.gather(1, best).squeeze(1)
        else:
            value = q_target.masked_fill(~valid, -torch.inf).max(dim=1).values
        return torch.where(any_valid, value, torch.zeros_like(value))

    def update(self, batch: Batch) -> dict[str, Any]:
        actions = batch.actions.reshape(len(batch), -1)[:, 0].round().long() - self.start
        with torch.no_grad():
            y = batch.rewards + batch.discounts * (1.0 - batch.dones) * self._next_value(batch.next_obs)
        q_sa = self.q(batch.obs).gather(1, actions.unsqueeze(1)).squeeze(1)
        td = y - q_sa
        per = F.smooth_l1_loss(q_sa, y, reduction="none") if self.loss == "huber" else td.pow(2)
        loss = (per * batch.weights).mean() if batch.weights is not None else per.mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.q.parameters(), float(self.grad_clip))
        self.opt.step()
        self.updates += 1
        if self.tau < 1.0:
            soft_update(self.q_target, self.q, self.tau)
        elif self.updates % self.target_update_every == 0:
            self.q_target.load_state_dict(self.q.state_dict())
        return {
            "loss/q": float(loss.item()),
            "train/q": float(q_sa.mean().item()),
            "train/epsilon": self.epsilon,
            "td_error": td.detach().abs().cpu().numpy(),
        }

    # ---- persistence --------------------------------------------------------------------------------
    def modules(self) -> dict[str, Any]:
        return {"q": self.q, "q_target": self.q_target, "opt": self.opt}

    def extra_state(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon, "updates": self.updates}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.epsilon = float(state["epsilon"])
        self.updates = int(state["updates"])
