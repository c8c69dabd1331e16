"""Action heads of the on-policy agents (PPO, A2C): the actor's output -> samples, log-probs, entropy and env
actions, for Box (Gaussian, clipped or tanh-squashed), Discrete (masked categorical) and Tuple(Discrete, Box)
(hybrid: a categorical over k and Gaussians over the parameters) action spaces. See rlrun/agents/ppo.py."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from rlrun.agents.sac import LOG_SQRT_2PI, tanh_log_det
from rlrun.errors import ConfigError

GAUSS_ENTROPY = 0.5 + LOG_SQRT_2PI  # entropy of N(0, 1) per dimension; add log_std


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(x | mean, exp(log_std)^2); the caller sums over the dimensions it scores."""
    z = (x - mean) * torch.exp(-log_std)
    return -0.5 * z.pow(2) - log_std - LOG_SQRT_2PI


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


