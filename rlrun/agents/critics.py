"""Q-function ensembles evaluated in one batched matmul per layer.

TD3 and SAC need two critics, DDPG one. Stacking the members' weights ([E, in, out]) and using
`torch.baddbmm` computes all of them in one call per layer instead of E separate MLP passes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from rlrun.errors import ConfigError

CRITIC_ARCHS = ("concat", "branched")


class EnsembleLinear(nn.Module):
    """E independent linear layers; input [B, in] (shared) or [E, B, in] -> output [E, B, out]."""

    def __init__(self, ensemble: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)  # nn.Linear's default init
        self.weight = nn.Parameter(torch.empty(ensemble, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(ensemble, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, first_frozen: bool = False) -> torch.Tensor:
        """`first_frozen`: only member 0, with weights detached (gradients flow to the input only)."""
        weight, bias = (self.weight[:1].detach(), self.bias[:1].detach()) if first_frozen else (self.weight, self.bias)
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(weight.shape[0], -1, -1)
        return torch.baddbmm(bias, x, weight)


class EnsembleLayerNorm(nn.Module):
    """LayerNorm with a separate scale and shift per ensemble member, so critics stay independent."""

    def __init__(self, ensemble: int, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ensemble, 1, width))
        self.bias = nn.Parameter(torch.zeros(ensemble, 1, width))

    def forward(self, x: torch.Tensor, first_frozen: bool = False) -> torch.Tensor:
        weight, bias = (self.weight[:1].detach(), self.bias[:1].detach()) if first_frozen else (self.weight, self.bias)
        return torch.nn.functional.layer_norm(x, x.shape[-1:]) * weight + bias


class QEnsemble(nn.Module):
    """E critics Q_e(s, a). `concat` feeds [s, a] to an MLP; `branched` (seed 004) embeds s and a separately
    with one layer each, concatenates the embeddings and continues with the remaining hidden layers."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int],
        ensemble: int = 2,
        arch: str = "concat",
        layer_norm: bool = False,
    ) -> None:
        super().__init__()
        if arch not in CRITIC_ARCHS:
            raise ConfigError(f"agent.critic_arch must be one of {', '.join(CRITIC_ARCHS)}, got {arch!r}")
        if not hidden:
            raise ConfigError("agent.critic_hidden needs at least one layer")
        self.arch = arch
        self.ensemble = ensemble
        hidden = [int(h) for h in hidden]
        if arch == "branched":
            self.state_branch = EnsembleLinear(ensemble, obs_dim, hidden[0])
            self.action_branch = EnsembleLinear(ensemble, act_dim, hidden[0])
            last, rest = 2 * hidden[0], hidden[1:]
        else:
            last, rest = obs_dim + act_dim, hidden
        layers: list[nn.Module] = []
        for width in rest:
            layers.append(EnsembleLinear(ensemble, last, width))
            if layer_norm:
                layers.append(EnsembleLayerNorm(ensemble, width))
            layers.append(nn.ReLU())
            last = width
        layers.append(EnsembleLinear(ensemble, last, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, obs: torch.Tensor, act: torch.Tensor, first_frozen: bool = False) -> torch.Tensor:
        """Returns [E, B]; with `first_frozen`, [1, B] from member 0 with its weights detached, as the
        actor loss needs (dQ/da only: no weight gradients are computed for the critic)."""
        if self.arch == "branched":
            x = torch.cat([torch.relu(self.state_branch(obs, first_frozen)),
                           torch.relu(self.action_branch(act, first_frozen))], dim=-1)
        else:
            x = torch.cat([obs, act], dim=-1)
        for layer in self.body:
            x = layer(x, first_frozen) if isinstance(layer, EnsembleLinear | EnsembleLayerNorm) else layer(x)
        return x.squeeze(-1)


def bellman_loss(q: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum over critics of the (importance-weighted) mean squared TD error, for q [E, B] and target y [B];
    also |TD| per sample averaged over the critics (the new priorities of prioritized replay)."""
    td = q - y
    sq = td.pow(2)
    loss = (sq * weights if weights is not None else sq).mean(dim=1).sum()
    return loss, td.detach().abs().mean(dim=0)
