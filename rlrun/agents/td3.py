"""TD3 (Fujimoto et al., 2018): DDPG plus clipped double-Q, target policy smoothing and delayed actor
updates. Both critics are one QEnsemble, evaluated in a single batched pass."""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces

from rlrun.agents.ddpg import DDPG
from rlrun.errors import ConfigError


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

    def target_action(self, next_obs: torch.Tensor) -> torch.Tensor:
        """Target policy smoothing: a' = clip(mu'(s') + clip(N(0, target_noise), +-target_noise_clip), -1, 1)."""
        a = self.actor_target(next_obs)
        eps = (torch.randn_like(a) * self.target_noise).clamp(-self.target_noise_clip, self.target_noise_clip)
        return (a + eps).clamp(-1.0, 1.0)

    def actor_due(self) -> bool:
        return self.updates % self.policy_delay == 0
