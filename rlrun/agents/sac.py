"""Soft Actor-Critic (Haarnoja et al. 2018, "SAC and applications"): seed 002's networks, done completely.

- Policy: a Gaussian over pre-squash actions u, a = tanh(u), mapped affinely to the env's Box. Its log-density
  carries the change-of-variables term log pi(a|s) = log N(u; mu, sigma) - sum log(1 - tanh(u)^2), computed
  as 2 (log 2 - u - softplus(-2u)), which equals seed 002's log(1 - a^2 + 1e-6) without the epsilon's bias
  and without -inf when tanh saturates.
- Twin critics with the min backup and Polyak-averaged targets, both evaluated in one batched forward pass
  (`rlrun.agents.critics.QEnsemble`).
- Temperature: learned (target entropy -|A| by default) or fixed (`autotune: false`, `alpha`).
- Evaluation acts with tanh(mu): deterministic.

The update reads top to bottom in `update`. The pieces that variants change are methods: `td_target`
(the soft Bellman target), `critic_loss` (CQL adds its conservative penalty there), `policy_loss` (behaviour
cloning adds a log-likelihood term) and `temperature_loss`.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from rlrun.agents.base import Agent
from rlrun.agents.critics import QEnsemble, bellman_loss
from rlrun.agents.nets import adam, optimizer_step, soft_update
from rlrun.errors import ConfigError
from rlrun.replay.buffer import Batch

LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
LOG_2 = math.log(2.0)


class SquashedGaussianActor(nn.Module):
    """pi(a|s): a = tanh(mu(s) + sigma(s) * eps), actions in [-1, 1]^A (seed 002 `PolicyNetwork`)."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: list[int],
        layer_norm: bool = False,
        log_std_min: float = -20.0,
        log_std_max: float = 2.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        last = obs_dim
        for width in hidden:
            layers.append(nn.Linear(last, int(width)))
            if layer_norm:
                layers.append(nn.LayerNorm(int(width)))
            layers.append(nn.ReLU())
            last = int(width)
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(last, 2 * act_dim)  # mean and log-std in one matmul
        self.log_std_min = float(log_std_min)
        self.log_std_max = float(log_std_max)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.head(self.trunk(obs)).chunk(2, dim=-1)
        return mean, log_std.clamp(self.log_std_min, self.log_std_max)

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised sample a in [-1, 1]^A and log pi(a|s) of shape [B]."""
        mean, log_std = self(obs)
        eps = torch.randn_like(mean)
        u = mean + log_std.exp() * eps
        log_prob = (-0.5 * eps.pow(2) - log_std - LOG_SQRT_2PI).sum(-1) - tanh_log_det(u).sum(-1)
        return torch.tanh(u), log_prob

    def log_prob(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """log pi(a|s) of given normalised actions (behaviour cloning); a is clipped off +-1 for atanh."""
        mean, log_std = self(obs)
        a = action.clamp(-1.0 + 1e-6, 1.0 - 1e-6)
        u = torch.atanh(a)
        z = (u - mean) * torch.exp(-log_std)
        return (-0.5 * z.pow(2) - log_std - LOG_SQRT_2PI).sum(-1) - tanh_log_det(u).sum(-1)

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self(obs)[0])


def tanh_log_det(u: torch.Tensor) -> torch.Tensor:
    """log(1 - tanh(u)^2), elementwise, in a form that stays finite for large |u|."""
    return 2.0 * (LOG_2 - u - F.softplus(-2.0 * u))


class Temperature(nn.Module):
    """Holds log(alpha) as a module so checkpoints persist it like any other network."""

    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.log_alpha = nn.Parameter(torch.tensor(math.log(alpha), dtype=torch.float32))

    def forward(self) -> torch.Tensor:
        return self.log_alpha.exp()


class SAC(Agent):
    supported_action_spaces = ("box",)
    batched_acting = True

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        device: str = "cpu",
        seed: int = 0,
        gamma: float = 0.99,
        batch_size: int = 256,
        tau: float = 0.005,
        lr: float = 3e-4,
        actor_lr: float | None = None,
        critic_lr: float | None = None,
        alpha_lr: float | None = None,
        actor_hidden: list[int] = (256, 256),
        critic_hidden: list[int] = (256, 256),
        n_critics: int = 2,
        layer_norm: bool = False,
        autotune: bool = True,
        alpha: float = 0.2,
        target_entropy: float | None = None,
        log_std_min: float = -20.0,
        log_std_max: float = 2.0,
        target_update_every: int = 1,
        grad_clip: float | None = None,
    ) -> None:
        super().__init__(observation_space, action_space, device=device, seed=seed, gamma=gamma,
                         batch_size=batch_size)
        lrs = {"lr": lr, "actor_lr": actor_lr, "critic_lr": critic_lr, "alpha_lr": alpha_lr}
        for key, value in lrs.items():
            if value is not None and not value > 0:
                raise ConfigError(f"agent.{key} must be > 0, got {value}")
        if not 0 < tau <= 1:
            raise ConfigError(f"agent.tau must be in (0, 1], got {tau}")
        if not alpha > 0:
            raise ConfigError(f"agent.alpha must be > 0 (initial or fixed temperature), got {alpha}")
        if n_critics < 1:
            raise ConfigError(f"agent.n_critics must be >= 1, got {n_critics}")
        if target_update_every < 1:
            raise ConfigError(f"agent.target_update_every must be >= 1, got {target_update_every}")
        if not log_std_min < log_std_max:
            raise ConfigError("agent.log_std_min must be < agent.log_std_max")
        low, high = action_space.low, action_space.high
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ConfigError(f"SAC needs a bounded Box action space (tanh squashing), got {action_space}")

        self.tau = float(tau)
        self.autotune = bool(autotune)
        self.grad_clip = grad_clip
        self.target_update_every = int(target_update_every)
        obs_dim = int(np.prod(observation_space.shape))
        self.act_dim = int(np.prod(action_space.shape))
        self.target_entropy = float(-self.act_dim if target_entropy is None else target_entropy)
        dev = self.device
        self._np_scale = ((high - low) / 2.0).astype(np.float32).reshape(-1)
        self._np_bias = ((high + low) / 2.0).astype(np.float32).reshape(-1)
        self.action_scale = torch.as_tensor(self._np_scale, device=dev)
        self.action_bias = torch.as_tensor(self._np_bias, device=dev)

        self.actor = SquashedGaussianActor(obs_dim, self.act_dim, list(actor_hidden), layer_norm,
                                           log_std_min, log_std_max).to(dev)
        self.critic = QEnsemble(obs_dim, self.act_dim, list(critic_hidden), n_critics, "concat",
                                layer_norm).to(dev)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.temperature = Temperature(alpha).to(dev)
        self.actor_opt = adam(self.actor.parameters(), actor_lr or lr)
        self.critic_opt = adam(self.critic.parameters(), critic_lr or lr)
        self.alpha_opt = adam(self.temperature.parameters(), alpha_lr or lr)
        self.updates = 0

    # ---- acting -------------------------------------------------------------------------------------
    def act_batch(self, obs: np.ndarray, explore: bool) -> list[np.ndarray]:
        with torch.no_grad():
            o = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device).reshape(len(obs), -1)
            a = self.actor.sample(o)[0] if explore else self.actor.deterministic(o)
        a = a.cpu().numpy()
        return list((a * self._np_scale + self._np_bias).reshape(len(a), *self.action_space.shape).astype(
            self.action_space.dtype))

    def normalise(self, actions: torch.Tensor) -> torch.Tensor:
        """Env-scale actions (as stored in replay) -> the actor's and critics' [-1, 1] units."""
        return ((actions - self.action_bias) / self.action_scale).clamp(-1.0, 1.0)

    @property
    def alpha(self) -> torch.Tensor:
        return self.temperature().detach()

    # ---- the pieces of the update -------------------------------------------------------------------
    def td_target(self, batch: Batch) -> torch.Tensor:
        """Soft Bellman target y = r + gamma^k (1 - done) (min_e Q'_e(s', a') - alpha log pi(a'|s'))."""
        with torch.no_grad():
            next_a, next_logp = self.actor.sample(batch.next_obs)
            q_next = self.critic_target(batch.next_obs, next_a).min(dim=0).values
            v_next = q_next - self.alpha * next_logp
            return batch.rewards + batch.discounts * (1.0 - batch.dones) * v_next

    def critic_loss(
        self, batch: Batch, y: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
        """Sum over critics of the (importance-weighted) squared TD error; also returns |TD| per sample."""
        q = self.critic(batch.obs, self.normalise(batch.actions))  # [E, B]
        loss, td = bellman_loss(q, y, batch.weights)
        return loss, {"train/q": q.detach().mean().item()}, td

    def policy_loss(self, obs: torch.Tensor, data_actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """E[alpha log pi(a|s) - min_e Q_e(s, a)], a ~ pi reparameterised. Returns the loss and log pi.
        `data_actions` (the batch's own actions) are for subclasses that imitate them (CQL's warm start)."""
        a, log_prob = self.actor.sample(obs)
        self.critic.requires_grad_(False)  # gradients flow to the actor through Q, not into Q's weights
        q = self.critic(obs, a).min(dim=0).values
        self.critic.requires_grad_(True)
        return (self.alpha * log_prob - q).mean(), log_prob

    def temperature_loss(self, log_prob: torch.Tensor) -> torch.Tensor:
        """Adjust log alpha so the policy's entropy -E[log pi] tracks the target entropy."""
        return -(self.temperature.log_alpha * (log_prob.detach() + self.target_entropy)).mean()

    # ---- the update ---------------------------------------------------------------------------------
    def update(self, batch: Batch) -> dict[str, Any]:
        # 1. critics regress onto the soft Bellman target
        y = self.td_target(batch)
        critic_loss, info, td = self.critic_loss(batch, y)
        optimizer_step(self.critic_opt, critic_loss, self.critic, self.grad_clip)

        # 2. the actor maximises min-Q plus entropy
        actor_loss, log_prob = self.policy_loss(batch.obs, batch.actions)
        optimizer_step(self.actor_opt, actor_loss, self.actor, self.grad_clip)

        # 3. the temperature follows the entropy target
        out: dict[str, Any] = {"loss/critic": critic_loss.item(), "loss/actor": actor_loss.item(), **info}
        if self.autotune:
            alpha_loss = self.temperature_loss(log_prob)
            optimizer_step(self.alpha_opt, alpha_loss, self.temperature, self.grad_clip)
            out["loss/alpha"] = alpha_loss.item()

        # 4. Polyak-averaged target critics
        self.updates += 1
        if self.updates % self.target_update_every == 0:
            soft_update(self.critic_target, self.critic, self.tau)

        out["train/alpha"] = float(self.alpha)
        out["train/entropy"] = float(-log_prob.detach().mean())
        out["td_error"] = td.cpu().numpy()
        return out

    # ---- persistence --------------------------------------------------------------------------------
    def modules(self) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "critic": self.critic,
            "critic_target": self.critic_target,
            "temperature": self.temperature,
            "actor_opt": self.actor_opt,
            "critic_opt": self.critic_opt,
            "alpha_opt": self.alpha_opt,
        }

    def extra_state(self) -> dict[str, Any]:
        return {"updates": self.updates}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.updates = int(state.get("updates", 0))
