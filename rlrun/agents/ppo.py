"""Proximal Policy Optimization (Schulman et al. 2017), and A2C (Mnih et al. 2016) as its one-epoch special case.

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

Action spaces (each a small `*Head` that turns the actor's output into samples, log-probs and env actions):
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
from rlrun.agents.sac import LOG_SQRT_2PI, tanh_log_det
from rlrun.errors import ConfigError
from rlrun.replay.rollout import PolicyStep, RolloutBuffer
from rlrun.spaces import is_hybrid

SCHEDULES = ("constant", "linear")
SQUASHES = ("clip", "tanh")
LAYOUTS = ("shared", "per_action")
GAUSS_ENTROPY = 0.5 + LOG_SQRT_2PI  # entropy of N(0, 1) per dimension; add log_std


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


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(x | mean, exp(log_std)^2); the caller sums over the dimensions it scores."""
    z = (x - mean) * torch.exp(-log_std)
    return -0.5 * z.pow(2) - log_std - LOG_SQRT_2PI


# ---- action heads: actor output -> samples, log-probs, entropy, env actions ------------------------------
class BoxBounds:
    """Maps raw Gaussian samples to a Box: clipped (SB3) or tanh-squashed and rescaled."""

    def __init__(self, box: spaces.Box, squash: str) -> None:
        self.shape, self.dtype, self.squash = box.shape, box.dtype, squash
        self.low = box.low.astype(np.float32).reshape(-1)
        self.high = box.high.astype(np.float32).reshape(-1)
        if squash == "tanh" and not (np.all(np.isfinite(self.low)) and np.all(np.isfinite(self.high))):
            raise ConfigError(f"agent.squash=tanh needs a bounded Box action space, got {box}; use squash=clip")
        self.scale, self.bias = (self.high - self.low) / 2.0, (self.high + self.low) / 2.0

    def to_env(self, raw: np.ndarray) -> np.ndarray:
        """[N, D] raw samples -> [N, *shape] actions inside the bounds."""
        a = np.clip(raw, self.low, self.high) if self.squash == "clip" else np.tanh(raw) * self.scale + self.bias
        return a.astype(self.dtype, copy=False).reshape(len(raw), *self.shape)

    def log_det(self, raw: torch.Tensor) -> torch.Tensor:
        """Elementwise log |d tanh(u) / du| for tanh squashing (0 for clipping: log-probs are of u)."""
        return tanh_log_det(raw) if self.squash == "tanh" else torch.zeros_like(raw)


def gumbel_argmax(logits: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """A categorical sample per row by the Gumbel-max trick: logits of -inf are never chosen."""
    g = torch.from_numpy(rng.gumbel(size=tuple(logits.shape)).astype(np.float32)).to(logits.device)
    return (logits + g).argmax(dim=-1)


def categorical_entropy(log_p: torch.Tensor) -> torch.Tensor:
    """-sum p log p per row, with masked (-inf) entries contributing 0 rather than 0 * -inf = nan."""
    return -(log_p.exp() * log_p.clamp_min(torch.finfo(log_p.dtype).min)).sum(-1)


class GaussianHead:
    """Box: a diagonal Gaussian over raw actions with a state-independent log-std."""

    def __init__(self, box: spaces.Box, squash: str) -> None:
        self.bounds = BoxBounds(box, squash)
        self.raw_dim = self.out_dim = self.std_dim = int(np.prod(box.shape))

    def sample(self, out: torch.Tensor, log_std: torch.Tensor, masks: torch.Tensor | None,
               rng: np.random.Generator) -> torch.Tensor:
        eps = torch.from_numpy(rng.standard_normal(tuple(out.shape), dtype=np.float32)).to(out.device)
        return out + log_std.exp() * eps

    def mode(self, out: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        return out

    def evaluate(self, out: torch.Tensor, log_std: torch.Tensor, raw: torch.Tensor,
                 masks: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """log pi(raw) [B] and the entropy [B]: exact for clipping, the one-sample estimate -log pi for tanh
        (no closed form; SB3 does the same)."""
        log_prob = (gaussian_log_prob(raw, out, log_std) - self.bounds.log_det(raw)).sum(-1)
        if self.bounds.squash == "tanh":
            return log_prob, -log_prob
        return log_prob, (GAUSS_ENTROPY + log_std).sum().expand(out.shape[0])

    def to_env(self, raw: np.ndarray) -> list[Any]:
        return list(self.bounds.to_env(raw))


class CategoricalHead:
    """Discrete(n): logits, with invalid actions masked to -inf. A row with no valid action is left unmasked
    (the env decides what choosing then means) instead of producing NaNs."""

    def __init__(self, space: spaces.Discrete) -> None:
        self.n, self.start = int(space.n), int(space.start)
        self.raw_dim, self.out_dim, self.std_dim = 1, self.n, 0

    @staticmethod
    def masked(logits: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        if masks is None:
            return logits
        valid = masks | ~masks.any(dim=-1, keepdim=True)
        return logits.masked_fill(~valid, -torch.inf)

    def sample(self, out: torch.Tensor, log_std: torch.Tensor, masks: torch.Tensor | None,
               rng: np.random.Generator) -> torch.Tensor:
        return gumbel_argmax(self.masked(out, masks), rng).float().unsqueeze(-1)

    def mode(self, out: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        return self.masked(out, masks).argmax(dim=-1).float().unsqueeze(-1)

    def evaluate(self, out: torch.Tensor, log_std: torch.Tensor, raw: torch.Tensor,
                 masks: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        log_p = torch.log_softmax(self.masked(out, masks), dim=-1)
        log_prob = log_p.gather(1, raw[:, :1].long()).squeeze(1)
        return log_prob, categorical_entropy(log_p)

    def to_env(self, raw: np.ndarray) -> list[Any]:
        return (raw[:, 0].astype(np.int64) + self.start).tolist()


class HybridHead:
    """Tuple(Discrete(K), Box(D)): logits for k, then K x D Gaussian means (one parameter vector per choice) and
    K x D log-stds. raw = [k, x_1..x_D]; log pi(k, x) = log pi(k) + sum_d m_kd log N(x_d | mu_kd, sigma_kd) with
    m_k the dims choice k uses (all for `shared`, slice k for `per_action`)."""

    def __init__(self, space: spaces.Tuple, squash: str, layout: str, param_sizes: list[int] | None,
                 device: torch.device) -> None:
        disc, box = space.spaces
        if len(box.shape) != 1:
            raise ConfigError(f"PPO needs a 1-d Box of parameters in a hybrid action space, got {box}")
        self.K, self.start, self.D = int(disc.n), int(disc.start), int(box.shape[0])
        self.bounds = BoxBounds(box, squash)
        self.raw_dim, self.out_dim, self.std_dim = 1 + self.D, self.K * (1 + self.D), self.K * self.D
        uses = torch.ones(self.K, self.D)
        if layout == "per_action":
            sizes = self._per_action_sizes(param_sizes)
            offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
            uses.zero_()
            for k in range(self.K):
                uses[k, offsets[k] : offsets[k + 1]] = 1.0
        elif param_sizes is not None:
            raise ConfigError("agent.param_sizes applies only to agent.layout=per_action")
        self.uses = uses.to(device)  # [K, D]

    def _per_action_sizes(self, param_sizes: list[int] | None) -> list[int]:
        if param_sizes is None:
            if self.D % self.K:
                raise ConfigError(f"agent.layout=per_action: the parameter Box has {self.D} dims, not divisible by "
                                  f"K={self.K}; set agent.param_sizes (one size per action) or agent.layout=shared")
            return [self.D // self.K] * self.K
        sizes = [int(s) for s in param_sizes]
        if len(sizes) != self.K or min(sizes) < 0 or sum(sizes) != self.D:
            raise ConfigError(f"agent.param_sizes must list {self.K} sizes summing to the Box's {self.D} dims, "
                              f"got {sizes}")
        return sizes

    def split(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Actor output [B, K + K D] -> logits [B, K], means [B, K, D]."""
        return out[:, : self.K], out[:, self.K :].reshape(-1, self.K, self.D)

    def _params_of(self, means: torch.Tensor, log_std: torch.Tensor,
                   k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Choice k's mean, log-std and used dims per row, each [B, D]."""
        rows = torch.arange(means.shape[0], device=means.device)
        return means[rows, k], log_std.view(self.K, self.D)[k], self.uses[k]

    def sample(self, out: torch.Tensor, log_std: torch.Tensor, masks: torch.Tensor | None,
               rng: np.random.Generator) -> torch.Tensor:
        logits, means = self.split(out)
        k = gumbel_argmax(logits, rng)
        mu, ls, _ = self._params_of(means, log_std, k)
        eps = torch.from_numpy(rng.standard_normal(tuple(mu.shape), dtype=np.float32)).to(out.device)
        return torch.cat([k.float().unsqueeze(-1), mu + ls.exp() * eps], dim=-1)

    def mode(self, out: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        logits, means = self.split(out)
        k = logits.argmax(dim=-1)
        mu = means[torch.arange(means.shape[0], device=means.device), k]
        return torch.cat([k.float().unsqueeze(-1), mu], dim=-1)

    def evaluate(self, out: torch.Tensor, log_std: torch.Tensor, raw: torch.Tensor,
                 masks: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """log pi(k) + log N(x | mu_k, sigma_k) over choice k's dims; entropy H(k) + sum_k pi(k) H(x | k)
        (exact for clipping; for tanh the x part is the one-sample estimate)."""
        logits, means = self.split(out)
        k, x = raw[:, 0].long(), raw[:, 1:]
        log_pk = torch.log_softmax(logits, dim=-1)
        mu, ls, use = self._params_of(means, log_std, k)
        log_px = ((gaussian_log_prob(x, mu, ls) - self.bounds.log_det(x)) * use).sum(-1)
        if self.bounds.squash == "tanh":
            h_x = -log_px
        else:
            h_per_k = ((GAUSS_ENTROPY + log_std.view(self.K, self.D)) * self.uses).sum(-1)  # [K]
            h_x = log_pk.exp() @ h_per_k
        return log_pk.gather(1, k.unsqueeze(1)).squeeze(1) + log_px, categorical_entropy(log_pk) + h_x

    def to_env(self, raw: np.ndarray) -> list[Any]:
        ks = (raw[:, 0].astype(np.int64) + self.start).tolist()
        return list(zip(ks, self.bounds.to_env(raw[:, 1:]), strict=True))


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
