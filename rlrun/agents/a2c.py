"""A2C (Mnih et al. 2016) as PPO's one-epoch special case: one RMSprop step per rollout on all of it, the plain
policy gradient, no clipping."""

from __future__ import annotations

import torch
from gymnasium import spaces
from torch import nn

from rlrun.agents.ppo import PPO, policy_gradient_loss
from rlrun.errors import ConfigError
from rlrun.replay.rollout import RolloutBuffer


class A2C(PPO):
    """Synchronous advantage actor-critic: one gradient step per rollout on the whole of it, the plain policy
    gradient -E[A log pi] (no ratio, no clipping), RMSprop. Defaults are SB3's A2C."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        device: str = "cpu",
        seed: int = 0,
        gamma: float = 0.99,
        n_steps: int = 5,
        gae_lambda: float = 1.0,
        lr: float = 7e-4,
        lr_schedule: str = "constant",
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float | None = 0.5,
        normalize_advantage: bool = False,
        normalize_obs: bool = False,
        squash: str = "clip",
        hidden: list[int] = (64, 64),
        activation: str = "tanh",
        log_std_init: float = 0.0,
        ortho_init: bool = True,
        rms_alpha: float = 0.99,
        rms_eps: float = 1e-5,
        horizon: int | None = None,
        action_mask: str = "auto",
        layout: str = "shared",
        param_sizes: list[int] | None = None,
    ) -> None:
        if not 0.0 <= rms_alpha < 1.0:
            raise ConfigError(f"agent.rms_alpha must be in [0, 1), got {rms_alpha}")
        if not rms_eps > 0:
            raise ConfigError(f"agent.rms_eps must be > 0, got {rms_eps}")
        self.rms_alpha, self.rms_eps = float(rms_alpha), float(rms_eps)  # make_optimizer reads them
        # batch_size = n_steps only satisfies the trainer's n_steps * num_envs >= batch_size check: the one
        # minibatch is always the whole rollout (minibatch_size)
        super().__init__(observation_space, action_space, device=device, seed=seed, gamma=gamma,
                         batch_size=n_steps, n_steps=n_steps, n_epochs=1, gae_lambda=gae_lambda, lr=lr,
                         lr_schedule=lr_schedule, ent_coef=ent_coef, vf_coef=vf_coef, max_grad_norm=max_grad_norm,
                         normalize_advantage=normalize_advantage, normalize_obs=normalize_obs, squash=squash,
                         hidden=hidden, activation=activation, log_std_init=log_std_init, ortho_init=ortho_init,
                         horizon=horizon, action_mask=action_mask, layout=layout, param_sizes=param_sizes)

    def make_optimizer(self, params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
        """RMSprop with SB3's A2C settings (alpha 0.99, eps 1e-5, no weight decay)."""
        return torch.optim.RMSprop(params, lr=lr, alpha=self.rms_alpha, eps=self.rms_eps)

    def policy_loss(self, log_probs: torch.Tensor, old_log_probs: torch.Tensor, advantages: torch.Tensor,
                    clip_range: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return policy_gradient_loss(log_probs, old_log_probs, advantages, clip_range)

    def minibatch_size(self, rollout: RolloutBuffer) -> int:
        return rollout.n_steps * rollout.num_envs
