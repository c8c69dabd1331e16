"""Export a trained actor to the fixed-point format, and the fixed-point agent used for deployment
(`rlrun export` is rlrun.commands.export).

Export: the run's actor (best checkpoint unless `checkpoint=` says otherwise) becomes a FixedPointMLP:
int64 weights at scale 10^8 in `<run>/export/fixedpoint/policy.int64` plus `policy.json` (layer sizes,
activations, tanh mode, scale, sha256 checksum, the action bounds and where it came from).

Which actors export: any nn.Sequential of Linear / ReLU / Tanh / Identity (DDPG and TD3 actors, built by
`rlrun.agents.nets.mlp`), and SAC's SquashedGaussianActor, whose deterministic action tanh(mean) is its
ReLU trunk plus the mean half of its head. Agents may also define `export_actor() -> nn.Sequential`.
Anything else (LayerNorm, ELU, ...) is refused with the list of supported layers.

`--verify` runs the float torch actor and the integer engine on the same N observations (by default the
observations the float policy meets in the run's environment, `obs=uniform` samples the observation box)
and reports max / mean |difference| of the [-1, 1] outputs; the exit code is 1 when the max exceeds
`tolerance` (default 1e-4).

Fixed-point inference in evaluation (`agent.inference=fixedpoint`): `wrap_for_inference(agent,
"fixedpoint")` returns a FixedPointAgent with the same `act(obs, explore)` as the agent, computing actions
with integers only; its `clear()` drops the engine (the circuit breaker's "clear the in-memory agent") and
the next `act` reloads it from the agent or export it was made from.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rlrun.deploy.fixedpoint import FixedPointMLP, from_fixed, to_fixed
from rlrun.errors import ConfigError

SUPPORTED_LAYERS = "Linear, ReLU, Tanh, Identity"
INFERENCE_MODES = ("float", "fixedpoint")


# ---- actor -> layers ---------------------------------------------------------------------------------


def _flatten(module: nn.Module) -> list[nn.Module]:
    if isinstance(module, nn.Sequential):
        out: list[nn.Module] = []
        for child in module:
            out += _flatten(child)
        return out
    return [module]


def sequential_layers(module: nn.Module) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Linear layers (float64 weights, biases) and the activation after each, from a Sequential stack."""
    weights: list[np.ndarray] = []
    biases: list[np.ndarray] = []
    acts: list[str] = []
    for m in _flatten(module):
        if isinstance(m, nn.Linear):
            weights.append(m.weight.detach().cpu().double().numpy())
            b = m.bias.detach().cpu().double().numpy() if m.bias is not None else np.zeros(m.out_features)
            biases.append(b)
            acts.append("identity")
        elif isinstance(m, nn.ReLU | nn.Tanh):
            if not acts or acts[-1] != "identity":
                raise ConfigError(
                    f"cannot export {type(m).__name__} here: fixed-point export needs Linear layers "
                    "each followed by at most one activation"
                )
            acts[-1] = "relu" if isinstance(m, nn.ReLU) else "tanh"
        elif isinstance(m, nn.Identity):
            continue
        else:
            raise ConfigError(
                f"cannot export layer {type(m).__name__} to fixed point; supported: {SUPPORTED_LAYERS}"
            )
    if not weights:
        raise ConfigError("the actor has no Linear layer to export")
    return weights, biases, acts


def actor_layers(agent: Any) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """The deterministic policy network of an agent as plain layers."""
    if hasattr(agent, "export_actor"):
        return sequential_layers(agent.export_actor())
    actor = getattr(agent, "actor", None)
    if isinstance(actor, nn.Sequential):
        return sequential_layers(actor)
    trunk, head = getattr(actor, "trunk", None), getattr(actor, "head", None)
    if isinstance(trunk, nn.Sequential) and isinstance(head, nn.Linear) and hasattr(actor, "deterministic"):
        # SAC: deterministic action tanh(mean), mean = first half of the head's outputs
        w, b, a = sequential_layers(trunk) if len(trunk) else ([], [], [])
        act_dim = head.out_features // 2
        w.append(head.weight.detach().cpu().double().numpy()[:act_dim])
        b.append(head.bias.detach().cpu().double().numpy()[:act_dim])
        a.append("tanh")
        return w, b, a
    raise ConfigError(
        f"agent {type(agent).__name__} has no exportable actor (an nn.Sequential `actor`, a SAC "
        f"squashed-Gaussian actor, or an export_actor() method)"
    )


def float_actor(agent: Any) -> Callable[[np.ndarray], np.ndarray]:
    """The float torch forward pass whose output the fixed-point engine reproduces ([-1, 1] actions)."""
    if hasattr(agent, "export_actor"):
        net = agent.export_actor()
    else:
        actor = agent.actor
        net = actor if isinstance(actor, nn.Sequential) else actor.deterministic
    device = getattr(agent, "device", torch.device("cpu"))

    @torch.no_grad()
    def run(obs: np.ndarray) -> np.ndarray:
        return net(torch.as_tensor(obs, dtype=torch.float32, device=device)).cpu().double().numpy()

    return run


def fixedpoint_from_agent(
    agent: Any, tanh: str = "pade", meta: dict[str, Any] | None = None
) -> FixedPointMLP:
    w, b, a = actor_layers(agent)
    meta = dict(meta or {})
    space = getattr(agent, "action_space", None)
    if space is not None and hasattr(space, "low"):
        meta.setdefault("action_low", np.asarray(space.low, dtype=np.float64).reshape(-1).tolist())
        meta.setdefault("action_high", np.asarray(space.high, dtype=np.float64).reshape(-1).tolist())
    return FixedPointMLP.from_float(w, b, a, tanh=tanh, meta=meta)


# ---- deployment wrapper ------------------------------------------------------------------------------


class FixedPointAgent:
    """Evaluation-time stand-in for an agent: observations -> integer engine -> actions in the env's box.

    The float edges are the observation conversion (IEEE-exact rounding to 10^-8) and the final affine map
    to the action bounds; everything in between is int64."""

    uses_replay = False
    offline = False

    def __init__(self, loader: Callable[[], FixedPointMLP]) -> None:
        self._loader = loader
        self._engine: FixedPointMLP | None = None
        self.reloads = 0

    @classmethod
    def from_agent(cls, agent: Any, tanh: str = "pade") -> FixedPointAgent:
        return cls(lambda: fixedpoint_from_agent(agent, tanh))

    @classmethod
    def from_export(cls, directory: Path | str) -> FixedPointAgent:
        return cls(lambda: FixedPointMLP.load(directory))

    @property
    def engine(self) -> FixedPointMLP:
        if self._engine is None:
            self._engine = self._loader()
            self.reloads += 1
        return self._engine

    def clear(self) -> None:
        """Drop the in-memory policy; the next act() reloads it (circuit breaker response)."""
        self._engine = None

    def act(self, obs: np.ndarray, explore: bool = False) -> np.ndarray:
        if explore:
            raise ConfigError("fixed-point inference is for deployment/evaluation; it has no exploration")
        eng = self.engine
        y = from_fixed(eng.forward(to_fixed(np.asarray(obs, dtype=np.float64))))
        low, high = eng.meta.get("action_low"), eng.meta.get("action_high")
        if low is not None and high is not None:
            low, high = np.asarray(low), np.asarray(high)
            y = y * (high - low) / 2.0 + (high + low) / 2.0
        return y.astype(np.float32)

    def on_step(self, step: int) -> None:
        del step

    def on_episode_end(self) -> None:
        pass


def wrap_for_inference(agent: Any, inference: str = "float", tanh: str = "pade") -> Any:
    """`agent.inference=fixedpoint`: evaluate the agent through the integer engine."""
    if inference not in INFERENCE_MODES:
        raise ConfigError(f"inference={inference!r}; allowed: {', '.join(INFERENCE_MODES)}")
    return agent if inference == "float" else FixedPointAgent.from_agent(agent, tanh)
