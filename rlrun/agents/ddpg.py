"""DDPG (Lillicrap et al., 2016): deterministic actor, Q critic, target networks with Polyak averaging.

The actor outputs tanh-bounded actions in [-1, 1] that are affinely mapped to the env's Box; the critic sees
the same normalised actions, so replayed env actions are normalised back before every update.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from rlrun.agents.base import Agent
from rlrun.agents.critics import QEnsemble
from rlrun.agents.nets import adam, mlp, soft_update
from rlrun.agents.noise import ActionNoise
from rlrun.errors import ConfigError
from rlrun.replay.buffer import Batch


class DDPG(Agent):
    supported_action_spaces = ("box",)
    batched_acting = True
    n_critics = 1

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
        actor_lr: float = 1e-3,
        critic_lr: float = 1e-3,
        actor_hidden: list[int] = (256, 256),
        critic_hidden: list[int] = (256, 256),
        critic_arch: str = "concat",
        noise: str = "gaussian",
        noise_sigma: float = 0.1,
        noise_theta: float = 0.15,
        noise_decay: float = 1.0,
        noise_min: float = 0.0,
        grad_clip: float | None = None,
    ) -> None:
        super().__init__(observation_space, action_space, device=device, seed=seed, gamma=gamma,
                         batch_size=batch_size)
        if not 0 < tau <= 1:
            raise ConfigError(f"agent.tau must be in (0, 1], got {tau}")
        if actor_lr <= 0 or critic_lr <= 0:
            raise ConfigError("agent.actor_lr and agent.critic_lr must be > 0")
        if not np.all(np.isfinite(action_space.low)) or not np.all(np.isfinite(action_space.high)):
            raise ConfigError(f"{type(self).__name__} needs a bounded Box action space, got {action_space}")
        self.tau = float(tau)
        self.grad_clip = grad_clip
        obs_dim = int(np.prod(observation_space.shape))
        self.act_dim = int(np.prod(action_space.shape))
        dev = self.device
        self.action_scale = torch.as_tensor((action_space.high - action_space.low) / 2.0, dtype=torch.float32,
                                            device=dev)
        self.action_bias = torch.as_tensor((action_space.high + action_space.low) / 2.0, dtype=torch.float32,
                                           device=dev)
        self.action_scale, self.action_bias = self.action_scale.reshape(-1), self.action_bias.reshape(-1)
        self._np_scale = self.action_scale.cpu().numpy()
        self._np_bias = self.action_bias.cpu().numpy()

        self.actor = mlp(obs_dim, actor_hidden, self.act_dim, output_activation="tanh").to(dev)
        self.critic = QEnsemble(obs_dim, self.act_dim, critic_hidden, self.n_critics, critic_arch).to(dev)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = adam(self.actor.parameters(), actor_lr)
        self.critic_opt = adam(self.critic.parameters(), critic_lr)
        self.noise = ActionNoise(noise, self.act_dim, self.rng, noise_sigma, noise_theta, noise_decay, noise_min)
        self.updates = 0

    # ---- acting -------------------------------------------------------------------------------------
    def act_batch(self, obs: np.ndarray, explore: bool) -> list[np.ndarray]:
        with torch.no_grad():
            a = self.actor(torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device)).cpu().numpy()
        if explore:
            a = np.clip(a + self.noise.sample(len(a)), -1.0, 1.0)
        a = (a * self._np_scale + self._np_bias).reshape(len(a), *self.action_space.shape)
        return list(a.astype(self.action_space.dtype))

    def on_episode_end(self, env_index: int = 0) -> None:
        self.noise.end_episode(env_index)

    # ---- learning -----------------------------------------------------------------------------------
    def _normalise(self, actions: torch.Tensor) -> torch.Tensor:
        return (actions - self.action_bias) / self.action_scale

    def _target_q(self, batch: Batch) -> torch.Tensor:
        with torch.no_grad():
            next_a = self.actor_target(batch.next_obs)
            q_next = self.critic_target(batch.next_obs, next_a).min(dim=0).values
            return batch.rewards + batch.discounts * (1.0 - batch.dones) * q_next

    def _critic_step(self, batch: Batch) -> tuple[float, torch.Tensor]:
        y = self._target_q(batch)
        q = self.critic(batch.obs, self._normalise(batch.actions))  # [E, B]
        td = q - y
        sq = td.pow(2)
        loss = (sq * batch.weights).mean(dim=1).sum() if batch.weights is not None else sq.mean(dim=1).sum()
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.critic.parameters(), self.grad_clip)
        self.critic_opt.step()
        return loss.item(), td.detach().abs().mean(dim=0)

    def _actor_step(self) -> float:
        obs = self._last_obs
        q = self.critic(obs, self.actor(obs), first_frozen=True)[0]
        loss = -q.mean()
        self.actor_opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.actor.parameters(), self.grad_clip)
        self.actor_opt.step()
        return loss.item()

    def _update_targets(self) -> None:
        soft_update(self.actor_target, self.actor, self.tau)
        soft_update(self.critic_target, self.critic, self.tau)

    def _actor_due(self) -> bool:
        return True

    def update(self, batch: Batch) -> dict[str, Any]:
        critic_loss, td = self._critic_step(batch)
        self.updates += 1
        out: dict[str, Any] = {"loss/critic": critic_loss, "td_error": td.cpu().numpy()}
        if self._actor_due():
            self._last_obs = batch.obs
            out["loss/actor"] = self._actor_step()
            self._update_targets()
        return out

    # ---- persistence --------------------------------------------------------------------------------
    def modules(self) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "critic": self.critic,
            "actor_target": self.actor_target,
            "critic_target": self.critic_target,
            "actor_opt": self.actor_opt,
            "critic_opt": self.critic_opt,
        }

    def extra_state(self) -> dict[str, Any]:
        return {"noise": self.noise.state_dict(), "updates": self.updates}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.noise.load_state_dict(state["noise"])
        self.updates = int(state["updates"])

    def hparams(self) -> dict[str, Any]:
        return {"noise_sigma_final": self.noise.sigma}
