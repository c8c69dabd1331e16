"""`agent=heuristic`: the PI export controller installers deploy today, as the baseline for env=inverter.

One discrete PI loop per phase on the measured net power of that phase (observation features 1..3, see
rlrun.envs.inverter.env), in velocity form:

    e_t   = net_t - setpoint            (net > 0 is export; setpoint = -margin_w, a small deliberate import)
    u_t   = clip(u_{t-1} + kp * (e_t - e_{t-1}) + ki * e_t,  0, capacity)     [W]

u_{t-1} is the last command actually sent, read back from the observation (the newest not-yet-effective
command), so the integrator is bumpless and can never drift from what the site executes; the clip to the
slaves' capacity is the anti-windup. Agents see only observations, so everything comes from the obs vector.

Tuning. Start from the SIMC rules (Skogestad 2003): from command to net power the plant is k = -1 W/W with
dead time theta = delay_s + 0.5 s (actuation delay plus half a sample) and lag tau1 ~ 1 s (the ramp limit);
SIMC's tight setting tau_c = theta gives kp = ki = 1 / (2 theta) = 0.091 for delay_s = 5. A grid on 12
30-min windows of *training* days (seeds 1000..1011, split=train, warm start; mean per window; return with
export and import weights 1; held-out days untouched):

    kp     ki     margin  return   export kWh  over-diversion kWh  s over limit  longest excursion s
    0.091  0.091  40      -762.5   0.0761      0.1356              237           24.6   (SIMC)
    0.15   0.15   40      -700.8   0.0673      0.1271              259           16.1
    0.25   0.15   40      -655.3   0.0610      0.1207              231           13.9
    0.40   0.15   40      -631.4   0.0576      0.1174              227           13.3   (default)
    0.50   0.15   40      -645.9   0.0594      0.1196              260           13.8
    0.30   0.20   40      -730.8   0.0705      0.1320              308           13.1
    0.40   0.15   20      -572.6   0.0641      0.0946              331           16.1
    0.40   0.15   60      -706.5   0.0533      0.1425              173           12.7

A larger kp (acting on the error *change*) answers load steps and cloud edges at once, while ki beyond ~0.15
oscillates against the 5-s dead time. margin_w = 40 W (about 2.7 sigma of the 15 W meter noise) keeps the
loop on the import side of zero: a smaller margin trades export seconds for less over-diversion. For another
delay_s, scale both gains by 5.5 / (delay_s + 0.5) as SIMC suggests.

With `explore=True` (data collection) Gaussian noise of std `explore_noise` (action units) is added, so an
offline dataset covers actions around the PI's choice.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from rlrun.agents.base import Agent
from rlrun.errors import ConfigError, IncompatibleSpaceError

N_FIXED, N_TAIL = 11, 4  # observation layout of rlrun.envs.inverter.env


class ExportPI(Agent):
    uses_replay = False
    supported_action_spaces = ("box",)

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        device: str = "cpu",
        seed: int = 0,
        kp: float = 0.4,
        ki: float = 0.15,
        margin_w: float = 40.0,
        max_power: float = 5000.0,
        capacity_w: list[float] | None = None,
        obs_scale_w: float = 5000.0,
        explore_noise: float = 0.1,
    ) -> None:
        super().__init__(observation_space, action_space, device=device, seed=seed)
        dim = int(observation_space.shape[0])
        if action_space.shape != (3,) or (dim - N_FIXED - N_TAIL) % 3 != 0 or dim < N_FIXED + N_TAIL:
            raise IncompatibleSpaceError(
                f"agent ExportPI drives env=inverter only (3 actions, 15 + 3*delay_s observations); "
                f"got observation {observation_space.shape}, action {action_space.shape}"
            )
        self.delay_s = (dim - N_FIXED - N_TAIL) // 3
        self.kp, self.ki = float(kp), float(ki)
        if self.kp < 0 or self.ki <= 0:
            raise ConfigError(f"agent.kp must be >= 0 and agent.ki > 0, got kp={kp}, ki={ki}")
        if max_power <= 0 or obs_scale_w <= 0:
            raise ConfigError("agent.max_power and agent.obs_scale_w must be > 0")
        cap = [max_power] * 3 if capacity_w is None else [float(c) for c in capacity_w]
        if len(cap) != 3 or min(cap) < 0:
            raise ConfigError(f"agent.capacity_w must be 3 values >= 0, got {capacity_w}")
        self.capacity = np.minimum(np.asarray(cap), max_power)
        self.margin_w = float(margin_w)
        self.max_power = float(max_power)
        self.obs_scale = float(obs_scale_w)
        self.explore_noise = float(explore_noise)
        self._prev_error: np.ndarray | None = None
        self._u = np.zeros(3)  # used only when delay_s == 0 (no command read-back in the observation)

    def control(self, obs: np.ndarray) -> np.ndarray:
        """Per-phase command in W for one observation (updates the controller's error memory)."""
        obs = np.asarray(obs, dtype=np.float64).reshape(-1)
        net = obs[1:4] * self.obs_scale
        error = net + self.margin_w
        if self.delay_s > 0:
            u_prev = obs[N_FIXED + 3 * (self.delay_s - 1): N_FIXED + 3 * self.delay_s] * self.max_power
        else:
            u_prev = self._u
        d_err = np.zeros(3) if self._prev_error is None else error - self._prev_error
        self._prev_error = error
        u = np.clip(u_prev + self.kp * d_err + self.ki * error, 0.0, self.capacity)
        self._u = u
        return u

    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        a = self.control(obs) / self.max_power * 2.0 - 1.0
        if explore and self.explore_noise > 0:
            a = a + self.rng.normal(0.0, self.explore_noise, size=3)
        return np.clip(a, -1.0, 1.0).astype(np.float32)

    def update(self, batch: Any) -> dict[str, Any]:
        return {}

    def reset_episode(self) -> None:
        self._prev_error = None
        self._u = np.zeros(3)

    def on_episode_end(self, env_index: int = 0) -> None:
        self.reset_episode()

    def extra_state(self) -> dict[str, Any]:
        return {"prev_error": None if self._prev_error is None else self._prev_error.tolist(),
                "u": self._u.tolist()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pe = state.get("prev_error")
        self._prev_error = None if pe is None else np.asarray(pe, dtype=np.float64)
        self._u = np.asarray(state.get("u", [0.0, 0.0, 0.0]), dtype=np.float64)
