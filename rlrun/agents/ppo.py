"""Proximal Policy Optimization (Schulman et al. 2017); A2C (Mnih et al. 2016), its one-epoch special case, is a2c.py.

On-policy: the trainer calls `policy_step` once per env step for all N copies (one forward pass), stores the
result in a `rlrun.replay.rollout.RolloutBuffer` of n_steps x N rows, computes GAE(lambda) and calls `update`,
which makes `n_epochs` passes over shuffled minibatches of the rollout minimising

    L = -E[min(r A, clip(r, 1 - eps, 1 + eps) A)] + vf_coef * E[(V - R)^2] - ent_coef * E[H(pi)]

with r = pi(a|s) / pi_old(a|s), A the advantages (normalised per minibatch, as SB3) and R the GAE returns.
Optional: a clipped value prediction (`clip_range_vf`, SB3's form: V_old + clip(V - V_old, +-eps_vf)), an early
stop of the epochs once the approximate KL exceeds 1.5 * target_kl (SB3's rule), linear decay to 0 of the
learning rate and of the clip range over `horizon` env steps (rl-zoo3's `lin_x`), and a running mean/std
observation normaliser (SB3's VecNormalize, observations only) that learns in `policy_step` during training,
is stored in checkpoints and is frozen at evaluation.

Networks are SB3's MlpPolicy, so a benchmark against SB3 compares like with like: separate actor and critic
MLPs (64-64 tanh), orthogonal init (gain sqrt 2, 0.01 for the policy head, 1 for the value head), zero biases,
a state-independent log-std, one Adam (eps 1e-5) over all parameters, gradient-norm clipping.

Action spaces (each a small `*Head` in policy_heads.py that turns the actor's output into samples, log-probs
and env actions):
- Box, `squash=clip`: a Gaussian in env units, stored unclipped and clipped to the bounds only for the env
  (SB3). `squash=tanh`: a = tanh(u) mapped affinely onto the bounds, stored as the pre-tanh u, with
  log pi(a) = log N(u) - sum log(1 - tanh(u)^2).
- Discrete: a categorical over logits; invalid actions (masks from the trainer, info["action_mask"]) get logit
  -inf, so they are never sampled and carry no probability mass in log-probs or the entropy.
- Tuple(Discrete(K), Box(P)) (H-PPO, Fan et al. 2019): a categorical head for k and K Gaussians over the
  parameters, pi(k, x) = pi(k) N(x | mu_k, sigma_k). `layout=shared` (seed 000's blockchain: one Box used
  with every k) scores all P dims; `layout=per_action` (Platform-style Box of K slices) scores only slice k,
  the dims the env reads for that k.

Randomness (Gaussian noise, Gumbel noise for categoricals, minibatch order) comes from the agent's numpy RNG,
which the checkpoint holds, so a resumed run acts bit-identically.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from rlrun.agents.base import Agent
from rlrun.agents.dqn import MASK_MODES, mask_declared
from rlrun.agents.nets import ACTIVATIONS, mlp
from rlrun.agents.policy_heads import CategoricalHead, GaussianHead, HybridHead
from rlrun.errors import ConfigError
from rlrun.replay.rollout import PolicyStep, RolloutBuffer
from rlrun.spaces import is_hybrid

SCHEDULES = ("constant", "linear")
SQUASHES = ("clip", "tanh")
LAYOUTS = ("shared", "per_action")


# ---- the losses, as pure functions of tensors (tests check them against hand-computed numbers) -------------
def clipped_surrogate_loss(
    log_probs: torch.Tensor, old_log_probs: torch.Tensor, advantages: torch.Tensor, clip_range: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO's policy loss -E[min(r A, clip(r, 1-eps, 1+eps) A)]; also the clip fraction and the approximate
    KL(old || new) by the low-variance estimator E[(r - 1) - log r] (both detached)."""
    log_ratio = log_probs - old_log_probs
    ratio = log_ratio.exp()
    loss = -torch.min(ratio * advantages, ratio.clamp(1.0 - clip_range, 1.0 + clip_range) * advantages).mean()
    with torch.no_grad():
        clip_fraction = ((ratio - 1.0).abs() > clip_range).float().mean()
        approx_kl = ((ratio - 1.0) - log_ratio).mean()
    return loss, clip_fraction, approx_kl


def policy_gradient_loss(
    log_probs: torch.Tensor, old_log_probs: torch.Tensor, advantages: torch.Tensor, clip_range: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A2C's -E[A log pi(a|s)], with the same diagnostics as the clipped loss (the clip fraction is 0)."""
    del clip_range
    loss = -(advantages * log_probs).mean()
    with torch.no_grad():
        log_ratio = log_probs - old_log_probs
        approx_kl = ((log_ratio.exp() - 1.0) - log_ratio).mean()
    return loss, torch.zeros((), device=log_probs.device), approx_kl


def value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, clip_range_vf: float | None
) -> torch.Tensor:
    """E[(V - R)^2]; with `clip_range_vf` the prediction may move at most +-clip_range_vf from the value at
    collection time (SB3's form: the clipped prediction alone, not baselines' max of clipped and unclipped)."""
    if clip_range_vf is not None:
        values = old_values + (values - old_values).clamp(-clip_range_vf, clip_range_vf)
    return F.mse_loss(values, returns)


def normalize_advantages(advantages: torch.Tensor) -> torch.Tensor:
    """Per minibatch, as SB3 (a batch of one is left alone: its std is undefined)."""
    if advantages.numel() < 2:
        return advantages
    return (advantages - advantages.mean()) / (advantages.std() + 1e-8)


# ---- networks ---------------------------------------------------------------------------------------------
class ActorCritic(nn.Module):
    """SB3's MlpPolicy: separate actor and critic MLPs, orthogonal init, state-independent log-std."""

    def __init__(self, obs_dim: int, out_dim: int, std_dim: int, hidden: list[int], activation: str,
                 log_std_init: float, ortho_init: bool) -> None:
        super().__init__()
        self.actor = mlp(obs_dim, hidden, out_dim, activation)
        self.critic = mlp(obs_dim, hidden, 1, activation)
        self.log_std = nn.Parameter(torch.full((std_dim,), float(log_std_init)))
        if ortho_init:
            for net, head_gain in ((self.actor, 0.01), (self.critic, 1.0)):
                linears = [m for m in net if isinstance(m, nn.Linear)]
                for i, layer in enumerate(linears):
                    nn.init.orthogonal_(layer.weight, gain=head_gain if i == len(linears) - 1 else math.sqrt(2))
                    nn.init.zeros_(layer.bias)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.actor(obs), self.critic(obs).squeeze(-1)


class RunningMeanStd:
    """Running mean and variance over batches (Chan et al.'s parallel combination, as SB3's VecNormalize);
    observations are normalised to (x - mean) / sqrt(var + eps), clipped to +-clip."""

    def __init__(self, dim: int, clip: float = 10.0, eps: float = 1e-8) -> None:
        self.mean = np.zeros(dim, dtype=np.float64)
        self.var = np.ones(dim, dtype=np.float64)
        self.count = 1e-4
        self.clip, self.eps = float(clip), float(eps)
        self._refresh()

    def _refresh(self) -> None:
        self._mean32 = self.mean.astype(np.float32)
        self._inv_std32 = (1.0 / np.sqrt(self.var + self.eps)).astype(np.float32)

    def update(self, x: np.ndarray) -> None:
        n = x.shape[0]
        batch_mean, batch_var = x.mean(axis=0, dtype=np.float64), x.var(axis=0, dtype=np.float64)
        delta, total = batch_mean - self.mean, self.count + n
        self.mean = self.mean + delta * n / total
        self.var = (self.var * self.count + batch_var * n + delta**2 * self.count * n / total) / total
        self.count = total
        self._refresh()

    def normalize(self, x: np.ndarray) -> np.ndarray:
        return np.clip((x - self._mean32) * self._inv_std32, -self.clip, self.clip)

    def state_dict(self) -> dict[str, Any]:
        return {"mean": torch.from_numpy(self.mean.copy()), "var": torch.from_numpy(self.var.copy()),
                "count": float(self.count)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean, self.var = state["mean"].numpy().copy(), state["var"].numpy().copy()
        self.count = float(state["count"])
        self._refresh()


# ---- the agent --------------------------------------------------------------------------------------------
class PPO(Agent):
    uses_replay = False
    on_policy = True
    batched_acting = True
    supported_action_spaces = ("box", "discrete", "hybrid")

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        device: str = "cpu",
        seed: int = 0,
        gamma: float = 0.99,
        batch_size: int = 64,
        n_steps: int = 2048,
        n_epochs: int = 10,
        gae_lambda: float = 0.95,
        lr: float = 3e-4,
        lr_schedule: str = "constant",
        clip_range: float = 0.2,
        clip_schedule: str = "constant",
        clip_range_vf: float | None = None,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float | None = 0.5,
        target_kl: float | None = None,
        normalize_advantage: bool = True,
        normalize_obs: bool = False,
        squash: str = "clip",
        hidden: list[int] = (64, 64),
        activation: str = "tanh",
        log_std_init: float = 0.0,
        ortho_init: bool = True,
        horizon: int | None = None,
        action_mask: str = "auto",
        layout: str = "shared",
        param_sizes: list[int] | None = None,
    ) -> None:
        super().__init__(observation_space, action_space, device=device, seed=seed, gamma=gamma,
                         batch_size=batch_size)
        self._check_options(locals())
        self.n_steps, self.n_epochs = int(n_steps), int(n_epochs)
        self.gae_lambda = float(gae_lambda)
        self.lr, self.lr_schedule = float(lr), lr_schedule
        self.clip_range, self.clip_schedule = float(clip_range), clip_schedule
        self.clip_range_vf = None if clip_range_vf is None else float(clip_range_vf)
        self.ent_coef, self.vf_coef = float(ent_coef), float(vf_coef)
        self.max_grad_norm = None if max_grad_norm is None else float(max_grad_norm)
        self.target_kl = None if target_kl is None else float(target_kl)
        self.normalize_advantage = bool(normalize_advantage)
        self.horizon = None if horizon is None else int(horizon)
        self.obs_dim = int(observation_space.shape[0])

        if isinstance(action_space, spaces.Box):
            self.head: GaussianHead | CategoricalHead | HybridHead = GaussianHead(action_space, squash)
        elif isinstance(action_space, spaces.Discrete):
            self.head = CategoricalHead(action_space)
        else:
            self.head = HybridHead(action_space, squash, layout, param_sizes, self.device)
        discrete = isinstance(action_space, spaces.Discrete)
        #: rollout sizing for the trainer: columns of PolicyStep.raw, and of the action masks (Discrete only)
        self.raw_dim: int = self.head.raw_dim
        self.mask_dim: int | None = int(action_space.n) if discrete and action_mask != "none" else None
        # evaluation gets no info dict: an env that declares its mask in the observation's tail (env=relay) is
        # masked from there, as agent=dqn does
        self.obs_masked = discrete and (action_mask == "obs_tail" or (
            action_mask == "auto" and mask_declared(observation_space, int(action_space.n))))

        self.policy = ActorCritic(self.obs_dim, self.head.out_dim, self.head.std_dim, list(hidden), activation,
                                  log_std_init, ortho_init).to(self.device)
        self.optimizer = self.make_optimizer(list(self.policy.parameters()), self.lr)
        self.obs_rms = RunningMeanStd(self.obs_dim) if normalize_obs else None
        self.step = 0  # env steps over all copies, from on_step: drives the schedules
        self.updates = 0

    # ---- validation ---------------------------------------------------------------------------------
    def _check_options(self, o: dict[str, Any]) -> None:
        for key, allowed in (("lr_schedule", SCHEDULES), ("clip_schedule", SCHEDULES), ("squash", SQUASHES),
                             ("activation", tuple(ACTIVATIONS)), ("action_mask", MASK_MODES),
                             ("layout", LAYOUTS)):
            if o[key] not in allowed:
                raise ConfigError(f"agent.{key} must be one of {', '.join(allowed)}, got {o[key]!r}")
        for key in ("n_steps", "n_epochs", "batch_size"):
            if o[key] < 1:
                raise ConfigError(f"agent.{key} must be >= 1, got {o[key]}")
        if not 0.0 < o["gae_lambda"] <= 1.0:
            raise ConfigError(f"agent.gae_lambda must be in (0, 1], got {o['gae_lambda']}")
        if not 0.0 < o["gamma"] <= 1.0:
            raise ConfigError(f"agent.gamma must be in (0, 1], got {o['gamma']}")
        for key in ("lr", "clip_range"):
            if not o[key] > 0:
                raise ConfigError(f"agent.{key} must be > 0, got {o[key]}")
        for key in ("clip_range_vf", "max_grad_norm", "target_kl"):
            if o[key] is not None and not o[key] > 0:
                raise ConfigError(f"agent.{key} must be > 0 or null (off), got {o[key]}")
        for key in ("ent_coef", "vf_coef"):
            if not o[key] >= 0:
                raise ConfigError(f"agent.{key} must be >= 0, got {o[key]}")
        if not math.isfinite(o["log_std_init"]):
            raise ConfigError(f"agent.log_std_init must be finite, got {o['log_std_init']}")
        if o["horizon"] is not None and o["horizon"] < 1:
            raise ConfigError(f"agent.horizon must be >= 1 env steps or null, got {o['horizon']}")
        linear = [k for k in ("lr_schedule", "clip_schedule") if o[k] == "linear"]
        if linear and o["horizon"] is None:
            raise ConfigError(f"agent.{linear[0]}=linear decays over agent.horizon env steps; set agent.horizon "
                              "(agent=ppo sets it to ${total_steps})")
        if not is_hybrid(self.action_space) and (o["layout"] != "shared" or o["param_sizes"] is not None):
            raise ConfigError("agent.layout and agent.param_sizes apply only to Tuple(Discrete, Box) actions")

    def make_optimizer(self, params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
        """One Adam over actor, critic and log-std, eps 1e-5 as SB3's ActorCriticPolicy."""
        return torch.optim.Adam(params, lr=lr, eps=1e-5, fused=True)

    # ---- acting -------------------------------------------------------------------------------------
    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(x)
        return t if self.device.type == "cpu" else t.to(self.device)

    def _masks(self, masks: np.ndarray | None) -> torch.Tensor | None:
        if masks is None or self.mask_dim is None:
            return None
        return self._tensor(np.asarray(masks, dtype=bool).reshape(-1, self.mask_dim))

    def _normalise(self, obs: np.ndarray) -> np.ndarray:
        return self.obs_rms.normalize(obs) if self.obs_rms is not None else obs

    @torch.inference_mode()
    def policy_step(self, obs: np.ndarray, masks: np.ndarray | None = None) -> PolicyStep:
        """Training: sample one action per env copy from raw observations [N, obs_dim] in one forward pass.
        The observation normaliser learns from these observations (and only from these)."""
        obs = np.array(obs, dtype=np.float32).reshape(-1, self.obs_dim)  # a copy: the env may reuse its array
        if self.obs_rms is not None:
            self.obs_rms.update(obs)
            obs = self.obs_rms.normalize(obs)
        m = self._masks(masks)
        out, values = self.policy(self._tensor(obs))
        raw = self.head.sample(out, self.policy.log_std, m, self.rng)
        log_probs, _ = self.head.evaluate(out, self.policy.log_std, raw, m)
        packed = torch.cat([raw, log_probs.unsqueeze(-1), values.unsqueeze(-1)], dim=-1).cpu().numpy()
        raw_np = packed[:, : self.raw_dim]
        return PolicyStep(actions=self.head.to_env(raw_np), raw=raw_np, log_probs=packed[:, -2],
                          values=packed[:, -1], obs=obs)

    @torch.inference_mode()
    def value(self, obs: np.ndarray) -> np.ndarray:
        """V(obs) [N] with the normaliser's current statistics, not updated: bootstraps truncated episodes and
        the rollout's last step."""
        obs = self._normalise(np.asarray(obs, dtype=np.float32).reshape(-1, self.obs_dim))
        return self.policy.critic(self._tensor(obs)).squeeze(-1).cpu().numpy()

    @torch.inference_mode()
    def act_batch(self, obs: np.ndarray, explore: bool) -> list[Any]:
        """Evaluation: the mean / most likely action (explore=False) or a sample; the normaliser stays frozen."""
        raw_obs = np.asarray(obs, dtype=np.float32).reshape(-1, self.obs_dim)
        m = self._tensor(raw_obs[:, -self.mask_dim :] > 0.5) if self.obs_masked else None
        out = self.policy.actor(self._tensor(self._normalise(raw_obs)))
        raw = self.head.sample(out, self.policy.log_std, m, self.rng) if explore else self.head.mode(out, m)
        return self.head.to_env(raw.cpu().numpy())

    # ---- schedules ----------------------------------------------------------------------------------
    def on_step(self, step: int) -> None:
        self.step = int(step)

    def progress_remaining(self) -> float:
        """1 at the start of the run, 0 after `horizon` env steps (rl-zoo3's lin_x multiplies by this)."""
        return 1.0 if self.horizon is None else max(0.0, 1.0 - self.step / self.horizon)

    def current_lr(self) -> float:
        return self.lr * (self.progress_remaining() if self.lr_schedule == "linear" else 1.0)

    def current_clip_range(self) -> float:
        return self.clip_range * (self.progress_remaining() if self.clip_schedule == "linear" else 1.0)

    # ---- the update ---------------------------------------------------------------------------------
    def policy_loss(self, log_probs: torch.Tensor, old_log_probs: torch.Tensor, advantages: torch.Tensor,
                    clip_range: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return clipped_surrogate_loss(log_probs, old_log_probs, advantages, clip_range)

    def minibatch_size(self, rollout: RolloutBuffer) -> int:
        return self.batch_size

    def update(self, rollout: RolloutBuffer) -> dict[str, float]:
        """n_epochs passes over the rollout (advantages already computed) in shuffled minibatches."""
        lr, clip_range = self.current_lr(), self.current_clip_range()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        params = list(self.policy.parameters())
        stats: list[torch.Tensor] = []  # per minibatch, read back once at the end (no sync per step)
        epochs = 0
        for _ in range(self.n_epochs):
            stopped = False
            for batch in rollout.minibatches(self.minibatch_size(rollout), self.rng):
                out, values = self.policy(batch.obs)
                log_probs, entropy = self.head.evaluate(out, self.policy.log_std, batch.raw, batch.masks)
                adv = normalize_advantages(batch.advantages) if self.normalize_advantage else batch.advantages
                pg_loss, clip_fraction, approx_kl = self.policy_loss(log_probs, batch.old_log_probs, adv,
                                                                      clip_range)
                if self.target_kl is not None and approx_kl.item() > 1.5 * self.target_kl:
                    stopped = True  # the policy moved too far from the one that collected the data
                    break
                v_loss = value_loss(values, batch.old_values, batch.returns, self.clip_range_vf)
                ent_loss = -entropy.mean()
                loss = pg_loss + self.ent_coef * ent_loss + self.vf_coef * v_loss
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if self.max_grad_norm is not None:
                    nn.utils.clip_grad_norm_(params, self.max_grad_norm, foreach=True)
                self.optimizer.step()
                stats.append(torch.stack([pg_loss.detach(), v_loss.detach(), ent_loss.detach(), approx_kl,
                                          clip_fraction]))
            if stopped:
                break
            epochs += 1
        self.updates += 1
        means = torch.stack(stats).mean(0).tolist() if stats else [float("nan")] * 5
        out = {
            "loss/policy": means[0],
            "loss/value": means[1],
            "loss/entropy": means[2],
            "loss/approx_kl": means[3],
            "loss/clip_fraction": means[4],
            "loss/explained_variance": rollout.explained_variance(),
            "train/lr": lr,
            "train/clip_range": clip_range,
            "train/epochs": float(epochs),
        }
        if self.head.std_dim:
            out["train/std"] = float(self.policy.log_std.detach().exp().mean())
        return out

    # ---- persistence --------------------------------------------------------------------------------
    def modules(self) -> dict[str, Any]:
        return {"policy": self.policy, "optimizer": self.optimizer}

    def extra_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"step": self.step, "updates": self.updates}
        if self.obs_rms is not None:
            state["obs_rms"] = self.obs_rms.state_dict()
        return state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.step = int(state.get("step", 0))
        self.updates = int(state.get("updates", 0))
        if self.obs_rms is not None:
            if "obs_rms" not in state:
                raise KeyError("checkpoint lacks the observation normaliser (trained without normalize_obs?)")
            self.obs_rms.load_state_dict(state["obs_rms"])
