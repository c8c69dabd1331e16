"""`agent=cql`: SAC + Conservative Q-Learning, CQL(H) (Kumar et al. 2020), trained from a dataset.

Seed 002 sketches CQL as `logsumexp over the batch of Q(s, uniform a) - mean Q(s, a_data)`, which mixes
states and ignores the sampling density. CQL(H) is, per state s and for each critic Q_e,

    R_e(s) = log  integral exp(Q_e(s, a)) da  -  Q_e(s, a_data)

with the integral estimated by importance sampling from M = 3N actions (as in the authors' code):
N uniform actions on [-1, 1]^A (density mu = 2^-A), N current-policy actions at s and N current-policy actions
at s' (drawn from pi(.|s'), evaluated at s), each with its *detached* log-density:

    log integral exp Q  ~=  logsumexp_j (Q_e(s, a_j) - log mu(a_j))  -  log M

The policy samples are drawn without gradient: the regulariser trains the critics only. The critic loss is
the SAC Bellman loss plus cql_alpha * mean_s sum_e R_e(s) (both critics). With `lagrange: true`, cql_alpha is
replaced by a learned alpha' >= 0 that drives the gap mean_s R_e(s) to `target_action_gap`
(alpha' * (R - target), alpha' trained to maximise it), the authors' CQL-Lagrange.

Options on top of SAC (rlrun.agents.sac, subclassed: only the critic and policy losses change):
- `bc_steps`: behaviour-cloning pre-training. For the first bc_steps updates the actor maximises the
  dataset actions' log-likelihood (plus SAC's entropy term) instead of Q, the warm start the CQL paper uses.
- `offline: false` + `init_checkpoint: <path>`: online fine-tuning from a CQL checkpoint. The networks (actor,
  critics, targets, temperature) are loaded from the checkpoint and the trainer steps the environment;
  `cql_alpha: 0` turns the update into plain SAC.

    rlrun collect env=inverter agent=heuristic episodes=40
    rlrun train env=inverter agent=cql dataset=<dir>/dataset.npz total_steps=20000
    rlrun train env=inverter agent=cql agent.offline=false agent.cql_alpha=0 learning_starts=0 \\
        agent.init_checkpoint=<cql run>/checkpoints/best.pt total_steps=20000
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from gymnasium import spaces
from torch import nn

from rlrun.agents.critics import bellman_loss
from rlrun.agents.sac import SAC
from rlrun.errors import CheckpointError, ConfigError
from rlrun.replay.buffer import Batch


def cql_logsumexp(q_rand: torch.Tensor, q_pi: torch.Tensor, q_pi_next: torch.Tensor, logp_pi: torch.Tensor,
                  logp_pi_next: torch.Tensor, act_dim: int, temp: float = 1.0) -> torch.Tensor:
    """Importance-sampled log integral exp(Q(s, a)/temp) da * temp, per critic and state.

    q_*: [E, B, N] critic values at N uniform actions, N policy actions at s, N policy actions drawn at s';
    logp_*: [B, N] the detached log-densities of the policy samples. Returns [E, B].
    """
    log_uniform = -act_dim * math.log(2.0)  # density of U[-1, 1]^A
    cat = torch.cat([q_rand / temp - log_uniform, q_pi / temp - logp_pi, q_pi_next / temp - logp_pi_next],
                    dim=-1)
    return temp * (torch.logsumexp(cat, dim=-1) - math.log(cat.shape[-1]))


class CQL(SAC):
    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        cql_alpha: float = 1.0,
        cql_n_actions: int = 10,
        cql_temp: float = 1.0,
        lagrange: bool = False,
        target_action_gap: float = 5.0,
        alpha_prime_lr: float = 3e-4,
        bc_steps: int = 0,
        offline: bool = True,
        init_checkpoint: str | None = None,
        **sac_kwargs: Any,
    ) -> None:
        super().__init__(observation_space, action_space, **sac_kwargs)
        if cql_alpha < 0:
            raise ConfigError(f"agent.cql_alpha must be >= 0, got {cql_alpha}")
        if cql_n_actions < 1:
            raise ConfigError(f"agent.cql_n_actions must be >= 1, got {cql_n_actions}")
        if not cql_temp > 0:
            raise ConfigError(f"agent.cql_temp must be > 0, got {cql_temp}")
        if bc_steps < 0:
            raise ConfigError(f"agent.bc_steps must be >= 0, got {bc_steps}")
        self.cql_alpha = float(cql_alpha)
        self.cql_n = int(cql_n_actions)
        self.cql_temp = float(cql_temp)
        self.lagrange = bool(lagrange)
        self.target_action_gap = float(target_action_gap)
        self.bc_steps = int(bc_steps)
        self.offline = bool(offline)  # instance attribute: the trainer reads agent.offline
        self.log_alpha_prime = nn.Parameter(torch.zeros((), device=self.device))
        self.alpha_prime_opt = torch.optim.Adam([self.log_alpha_prime], lr=alpha_prime_lr)
        if init_checkpoint:
            self.load_networks(init_checkpoint)

    # ---- fine-tuning from a checkpoint --------------------------------------------------------------
    def load_networks(self, path: str) -> None:
        """Load actor, critics, target critics and temperature from an rlrun checkpoint of a SAC/CQL run."""
        from rlrun.checkpoint import load_checkpoint

        ckpt = load_checkpoint(Path(path))
        mods = ckpt.get("agent", {}).get("modules", {})
        try:
            for name in ("actor", "critic", "critic_target", "temperature"):
                getattr(self, name).load_state_dict(mods[name])
        except (KeyError, RuntimeError) as e:
            raise CheckpointError(f"init_checkpoint {path} has no matching SAC/CQL networks ({e})") from None

    # ---- the conservative penalty -------------------------------------------------------------------
    def _q_many(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q_e(s_b, a_bn) for obs [B, D] and actions [B, N, A] -> [E, B, N]."""
        b, n, a = actions.shape
        obs_rep = obs.unsqueeze(1).expand(b, n, obs.shape[-1]).reshape(b * n, -1)
        return self.critic(obs_rep, actions.reshape(b * n, a)).reshape(-1, b, n)

    def cql_regularizer(self, obs: torch.Tensor, next_obs: torch.Tensor, q_data: torch.Tensor
                        ) -> tuple[torch.Tensor, dict[str, float]]:
        """R_e = (estimate of log integral exp Q_e(s, a) da) - Q_e(s, a_data), averaged over s: [E]."""
        b, n = obs.shape[0], self.cql_n
        with torch.no_grad():
            rand = torch.empty(b, n, self.act_dim, device=obs.device).uniform_(-1.0, 1.0)
            obs_rep = obs.repeat_interleave(n, dim=0)
            next_rep = next_obs.repeat_interleave(n, dim=0)
            a_pi, logp_pi = self.actor.sample(obs_rep)
            a_next, logp_next = self.actor.sample(next_rep)
        # one critic pass over all 3N actions per state: [E, B, 3N]
        q_all = self._q_many(obs, torch.cat([rand, a_pi.reshape(b, n, -1), a_next.reshape(b, n, -1)], dim=1))
        q_rand, q_pi, q_next = q_all.split(n, dim=-1)
        lse = cql_logsumexp(q_rand, q_pi, q_next, logp_pi.reshape(b, n), logp_next.reshape(b, n),
                            self.act_dim, self.cql_temp)
        gap = (lse - q_data).mean(dim=1)  # [E]
        return gap, {"train/cql_logsumexp": lse.detach().mean().item(),
                     "train/cql_gap": gap.detach().mean().item()}

    def critic_loss(
        self, batch: Batch, y: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
        q = self.critic(batch.obs, self.normalise(batch.actions))  # [E, B]
        bellman, td = bellman_loss(q, y, batch.weights)
        info = {"train/q": q.detach().mean().item(), "loss/bellman": bellman.item()}
        if self.cql_alpha == 0.0 and not self.lagrange:
            return bellman, info, td
        gap, cql_info = self.cql_regularizer(batch.obs, batch.next_obs, q)
        info.update(cql_info)
        if self.lagrange:
            alpha_prime = self.log_alpha_prime.exp().clamp(0.0, 1e6)
            constraint = self.cql_alpha * gap - self.target_action_gap  # [E]
            penalty = (alpha_prime.detach() * constraint).sum()
            alpha_prime_loss = -(alpha_prime * constraint.detach()).sum()
            self.alpha_prime_opt.zero_grad(set_to_none=True)
            alpha_prime_loss.backward()
            self.alpha_prime_opt.step()
            info["train/alpha_prime"] = float(alpha_prime.detach())
        else:
            penalty = self.cql_alpha * gap.sum()
        info["loss/cql"] = penalty.item()
        return bellman + penalty, info, td

    # ---- behaviour-cloning warm start ---------------------------------------------------------------
    def policy_loss(self, obs: torch.Tensor, data_actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For the first `bc_steps` updates: E[alpha log pi(a|s) - log pi(a_data|s)] (behaviour cloning)."""
        if self.updates >= self.bc_steps:
            return super().policy_loss(obs, data_actions)
        a, log_prob = self.actor.sample(obs)
        data_logp = self.actor.log_prob(obs, self.normalise(data_actions))
        return (self.alpha * log_prob - data_logp).mean(), log_prob

    def update(self, batch: Batch) -> dict[str, Any]:
        out = super().update(batch)
        if self.updates <= self.bc_steps:
            out["train/bc"] = 1.0
        return out

    # ---- persistence --------------------------------------------------------------------------------
    def modules(self) -> dict[str, Any]:
        mods = super().modules()
        mods["alpha_prime_opt"] = self.alpha_prime_opt
        return mods

    def extra_state(self) -> dict[str, Any]:
        return {**super().extra_state(), "log_alpha_prime": float(self.log_alpha_prime.detach())}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        with torch.no_grad():
            self.log_alpha_prime.fill_(float(state.get("log_alpha_prime", 0.0)))
