"""TD3 (Fujimoto et al., 2018): DDPG plus clipped double-Q, target policy smoothing and delayed actor
updates. Both critics are one QEnsemble, evaluated in a single batched pass."""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces

from rlrun.agents.ddpg import DDPG
from rlrun.errors import ConfigError
from rlrun.replay.buffer import Batch


class TD3(DDPG):
    n_critics = 2

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        policy_delay: int = 2,
        target_noise: float = 0.2,
        target_noise_clip: float = 0.5,
        **kwargs: Any,
    ) -> None:
        super().__init__(observation_space, action_space, **kwargs)
        if policy_delay < 1:
            raise ConfigError(f"agent.policy_delay must be >= 1, got {policy_delay}")
        self.policy_delay = int(policy_delay)
        self.target_noise = float(target_noise)
        self.target_noise_clip = float(target_noise_clip)

    def _target_q(self, batch: Batch) -> torch.Tensor:
        with torch.no_grad():
            a = self.actor_target(batch.next_obs)
            eps = (torch.randn_like(a) * self.target_noise).clamp(-self.target_noise_clip, self.target_noise_clip)
            next_a = (a + eps).clamp(-1.0, 1.0)
            q_next = self.critic_target(batch.next_obs, next_a).min(dim=0).values
            return batch.rewards + batch.discounts * (1.0 - batch.dones) * q_next

    def _actor_due(self) -> bool:
        return self.updates % self.policy_delay == 0
