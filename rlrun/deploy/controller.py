"""Seed 002's `DeployedRLController`: a trained SAC/CQL actor driving zigbee slaves, with safety checks.

    ctl = DeployedRLController("outputs/train/inverter-cql/<date>/checkpoints/best.pt", mode="shadow")
    decision = ctl.step(state, num_slaves_per_phase=[2, 1, 1])
    decision.command   # [[w, w], [w], [w]] integer watts per slave, or None (shadow / paused / bad input)

- Loads an rlrun checkpoint of agent=sac / agent=cql (the actor) or agent=dynamics (the policy trained through
  the forward model) and rebuilds the network from the weights alone (layer sizes and LayerNorm are read from
  the state dict), so deployment needs neither the simulator nor Hydra.
- Deterministic action (tanh(mu(s)) for SAC/CQL) mapped from [-1, 1] to [0, max_power] W as the seed's get_action does,
  then the safety clip to [0, max_power].
- Bad input gets a clear error and no command: a state of the wrong dimension or with NaN / inf
  (`InvalidStateError`), wrong slave counts or power vectors (`ValueError`).
- Modes (rlrun.governance.modes, seed 001's): shadow computes and logs the command but sends nothing (the
  seed's "Deploy in shadow mode" step), conservative / autonomous send it with each phase's target moving at
  most 10 % / 25 % of max_power per decision from the last sent target, paused runs no inference.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rlrun.agents.sac import SquashedGaussianActor
from rlrun.errors import CheckpointError
from rlrun.governance.modes import AgentMode, applies_changes, max_change, parse_mode, runs_inference

log = logging.getLogger("rlrun.deploy")


class InvalidStateError(ValueError):
    """The controller refused a state (wrong dimension, NaN or inf): no command is issued."""


@dataclass
class Decision:
    mode: AgentMode
    action_w: np.ndarray | None  # recommended per-phase power after the safety clip (None when paused)
    command: list[list[int]] | None  # what is sent to the slaves (None: nothing sent)


def actor_from_state_dict(state: dict[str, torch.Tensor]) -> SquashedGaussianActor:
    """Rebuild a SquashedGaussianActor from its weights: Linear layers are the 2-D `trunk.i.weight`s,
    a 1-D `trunk.i.weight` is a LayerNorm."""
    linear, has_norm = [], False
    for key, value in state.items():
        m = re.fullmatch(r"trunk\.(\d+)\.weight", key)
        if m:
            if value.dim() == 2:
                linear.append((int(m.group(1)), value.shape))
            else:
                has_norm = True
    if "head.weight" not in state or not linear:
        raise CheckpointError("checkpoint actor is not a SAC/CQL squashed-Gaussian actor")
    linear.sort()
    hidden = [int(shape[0]) for _, shape in linear]
    obs_dim = int(linear[0][1][1])
    act_dim = int(state["head.weight"].shape[0]) // 2
    actor = SquashedGaussianActor(obs_dim, act_dim, hidden, layer_norm=has_norm)
    actor.load_state_dict(state)
    return actor.eval()


def tanh_mlp_from_state_dict(state: dict[str, torch.Tensor]) -> nn.Sequential:
    """Rebuild rlrun.agents.nets.mlp(..., output_activation="tanh") (ReLU hidden layers) from its weights."""
    idx = sorted(int(k.split(".")[0]) for k in state if k.endswith(".weight"))
    if not idx:
        raise CheckpointError("checkpoint policy has no layers")
    layers: list[nn.Module] = []
    for n, i in enumerate(idx):
        w = state[f"{i}.weight"]
        layers.append(nn.Linear(int(w.shape[1]), int(w.shape[0])))
        layers.append(nn.ReLU() if n < len(idx) - 1 else nn.Tanh())
    net = nn.Sequential(*layers)
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint policy is not a tanh MLP ({str(e).splitlines()[0]})") from None
    return net.eval()


class DeployedRLController:
    def __init__(
        self,
        checkpoint: str | Path,
        max_power: float = 5000.0,
        mode: str | int | AgentMode = AgentMode.SHADOW,
        log_path: str | Path | None = None,
    ) -> None:
        from rlrun.checkpoint import load_checkpoint

        ckpt = load_checkpoint(Path(checkpoint))
        try:
            mods = ckpt["agent"]["modules"]
        except (KeyError, TypeError):
            mods = {}
        if "actor" in mods:  # agent=sac / agent=cql: tanh(mu(s))
            self.actor: nn.Module | None = actor_from_state_dict(mods["actor"])
            self.policy = self.actor.deterministic
            self.state_dim = self.actor.trunk[0].in_features
            self.action_dim = self.actor.head.out_features // 2
        elif "policy" in mods:  # agent=dynamics: the tanh MLP trained through the forward model
            self.actor = tanh_mlp_from_state_dict(mods["policy"])
            self.policy = self.actor
            linears = [m for m in self.actor if isinstance(m, nn.Linear)]
            self.state_dim, self.action_dim = linears[0].in_features, linears[-1].out_features
        else:
            raise CheckpointError(f"checkpoint {checkpoint} holds no policy (train agent=sac, cql or dynamics)")
        if not max_power > 0:
            raise ValueError(f"max_power must be > 0, got {max_power}")
        self.max_power = float(max_power)
        self.mode = parse_mode(mode)
        self.log_path = Path(log_path) if log_path is not None else None
        self.last_sent = np.zeros(self.action_dim)

    # ---- the seed's API ------------------------------------------------------------------------------
    def get_action(self, state: np.ndarray) -> np.ndarray:
        """Per-phase power targets in W for one state: deterministic policy, then the safety clip."""
        s = np.asarray(state, dtype=np.float64)
        if s.shape != (self.state_dim,):
            raise InvalidStateError(f"state must have shape ({self.state_dim},), got {s.shape}")
        if not np.all(np.isfinite(s)):
            bad = np.nonzero(~np.isfinite(s))[0].tolist()
            raise InvalidStateError(f"state has NaN/inf at features {bad}; no command issued")
        with torch.no_grad():
            a = self.policy(torch.as_tensor(s, dtype=torch.float32).unsqueeze(0))[0].numpy()
        power = (a.astype(np.float64) + 1.0) * self.max_power / 2.0
        return np.clip(power, 0.0, self.max_power)

    @staticmethod
    def compute_zigbee_command(action: np.ndarray, num_slaves_per_phase: Sequence[int]) -> list[list[int]]:
        """Split each phase's power evenly over its slaves as integer watts (empty list for no slaves)."""
        power = np.asarray(action, dtype=np.float64).reshape(-1)
        if len(num_slaves_per_phase) != len(power):
            raise ValueError(
                f"num_slaves_per_phase needs {len(power)} counts, got {list(num_slaves_per_phase)}"
            )
        if not np.all(np.isfinite(power)) or np.any(power < 0):
            raise ValueError(f"per-phase power must be finite and >= 0, got {power.tolist()}")
        command = []
        for total, n in zip(power, num_slaves_per_phase, strict=True):
            if int(n) != n or n < 0:
                raise ValueError(f"slave counts must be integers >= 0, got {list(num_slaves_per_phase)}")
            command.append([int(total / n)] * int(n) if n > 0 else [])
        return command

    # ---- one control decision ------------------------------------------------------------------------
    def step(self, state: np.ndarray, num_slaves_per_phase: Sequence[int]) -> Decision:
        """Decide and, depending on the mode, command. Bad input raises InvalidStateError: nothing sent."""
        if not runs_inference(self.mode):
            return Decision(self.mode, None, None)
        power = self.get_action(state)
        if applies_changes(self.mode):
            bound = max_change(self.mode) * self.max_power
            power = np.clip(power, self.last_sent - bound, self.last_sent + bound)
            command = self.compute_zigbee_command(power, num_slaves_per_phase)
            self.last_sent = power
        else:
            command = None
        self._log(power, command, num_slaves_per_phase)
        return Decision(self.mode, power, command)

    def set_mode(self, mode: str | int | AgentMode) -> None:
        self.mode = parse_mode(mode)

    def _log(self, power: np.ndarray, command: list[list[int]] | None, slaves: Sequence[int]) -> None:
        would_send = command if command is not None else self.compute_zigbee_command(power, slaves)
        record = {
            "mode": self.mode.name.lower(),
            "power_w": [round(float(p), 1) for p in power],
            "command": would_send,
            "sent": command is not None,
        }
        log.info("inverter controller %s", record)
        if self.log_path is not None:
            with self.log_path.open("a") as f:
                f.write(json.dumps(record) + "\n")
