"""MLP builders shared by the agents."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU, "silu": nn.SiLU}


def mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int,
    activation: str = "relu",
    output_activation: str | None = None,
    layer_norm: bool = False,
) -> nn.Sequential:
    """Linear -> [LayerNorm] -> activation, repeated; then a linear output with an optional activation."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    layers: list[nn.Module] = []
    last = in_dim
    for width in hidden:
        layers.append(nn.Linear(last, int(width)))
        if layer_norm:
            layers.append(nn.LayerNorm(int(width)))
        layers.append(ACTIVATIONS[activation]())
        last = int(width)
    layers.append(nn.Linear(last, out_dim))
    if output_activation is not None:
        layers.append(ACTIVATIONS[output_activation]())
    return nn.Sequential(*layers)


def adam(params, lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel (CPU and CUDA): 2-3x faster steps than the for-each one for small nets."""
    return torch.optim.Adam(params, lr=lr, fused=True)


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor, module: nn.Module,
                   grad_clip: float | None = None) -> None:
    """One gradient step on `loss`, with the module's gradient norm clipped to `grad_clip` when set."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(module.parameters(), grad_clip)
    opt.step()


@torch.no_grad()
def soft_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """Polyak averaging: target <- tau * online + (1 - tau) * target."""
    t_params = list(target.parameters())
    o_params = list(online.parameters())
    torch._foreach_lerp_(t_params, o_params, tau)


def freeze(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        p.requires_grad_(False)
    return module
