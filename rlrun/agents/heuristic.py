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
loop on the import side of zero: a smaller margin trades export seconds for less over-diversion.

Other delays (`gain_schedule`, default on; kp and ki are the gains for `tuned_delay_s` = 5). SIMC's
continuous rescaling, both gains x 5.5 / (delay_s + 0.5), is wrong at small delays: this is a sampled loop.
A command sent at t is the slave target d = delay_s steps later, and while the step is within the ramp
(|change| <= ramp_w_per_s, 1 kW/s) the slave gets there within that second, so the measurement shows it
L = d + 1 samples after it was sent: net_{t+1} = surplus - u_{t-d}. With the velocity-form law above the
closed loop's characteristic polynomial is
    z^(d+2) - z^(d+1) + (kp + ki) z - kp,
and at d = 0 (L = 1) it is z^2 + (kp + ki - 1) z - kp: the product of its roots is -kp, so any kp >= 1
oscillates with growing amplitude, and SIMC's x11 (kp = 4.4) has a pole at 5.8. The rule here: scale both
gains by the largest factor g <= 5.5 / (delay_s + 0.5) for which the slowest closed-loop pole stays within
that of the tuned loop at delay 5 (|z| <= 0.893 per second), i.e. the same stability margin, reached with
SIMC's own factor where that is safe (long delays) and capped where it is not: g = 1.90 at d = 0 (kp = 0.76,
ki = 0.28), 1.49 at d = 2, 1 at d = 5, 0.85 at d = 6, 0.62 at d = 8. Beyond d = 12 no factor on these gains
keeps that margin, and the one with the fastest slowest pole is taken (still stable). Steps larger than the
ramp only slow the plant down (rate limit), which the margin absorbs.

With `explore=True` (data collection) Gaussian noise of std `explore_noise` (action units) is added, so an
offline dataset covers actions around the PI's choice. The noise is a dither, not a disturbance: the next
step's u_{t-1} is the read-back command minus the noise added to it, so the integrator does not accumulate it.
(Integrating it turned the noise into a random walk that the slow, delayed loop only pulls back after many
seconds: a 40-episode dataset then exported 489 W and over-diverted 869 W on average, against 315 W and
474 W with the dither and ~50 W / ~170 W for the noise-free PI; the median |net power| of a phase was 372 W
against 210 W with the dither, so far fewer states lay near zero, where a good controller operates.)
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
        gain_schedule: bool = True,
        tuned_delay_s: int = 5,
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
        if tuned_delay_s < 0:
            raise ConfigError(f"agent.tuned_delay_s must be >= 0, got {tuned_delay_s}")
        self.gain_scale = 1.0
        if gain_schedule and self.delay_s != tuned_delay_s:
            self.gain_scale = gain_scale(self.kp, self.ki, int(tuned_delay_s), self.delay_s)
            self.kp, self.ki = self.kp * self.gain_scale, self.ki * self.gain_scale
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
        self._dither = np.zeros(3)  # W added to the last command by exploration, taken out of the read-back

    def control(self, obs: np.ndarray) -> np.ndarray:
        """Per-phase command in W for one observation (updates the controller's error memory)."""
        obs = np.asarray(obs, dtype=np.float64).reshape(-1)
        net = obs[1:4] * self.obs_scale
        error = net + self.margin_w
        if self.delay_s > 0:
            u_prev = obs[N_FIXED + 3 * (self.delay_s - 1): N_FIXED + 3 * self.delay_s] * self.max_power
            u_prev = u_prev - self._dither
        else:
            u_prev = self._u
        d_err = np.zeros(3) if self._prev_error is None else error - self._prev_error
        self._prev_error = error
        u = np.clip(u_prev + self.kp * d_err + self.ki * error, 0.0, self.capacity)
        self._u = u
        return u

    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        u = self.control(obs)
        a = u / self.max_power * 2.0 - 1.0
        if explore and self.explore_noise > 0:
            a = a + self.rng.normal(0.0, self.explore_noise, size=3)
        a = np.clip(a, -1.0, 1.0).astype(np.float32)
        sent = (a.astype(np.float64) + 1.0) * 0.5 * self.max_power
        self._dither = sent - u if explore else np.zeros(3)
        return a

    def update(self, batch: Any) -> dict[str, Any]:
        return {}

    def reset_episode(self) -> None:
        self._prev_error = None
        self._u = np.zeros(3)
        self._dither = np.zeros(3)

    def on_episode_end(self, env_index: int = 0) -> None:
        self.reset_episode()

    def extra_state(self) -> dict[str, Any]:
        return {"prev_error": None if self._prev_error is None else self._prev_error.tolist(),
                "u": self._u.tolist(), "dither": self._dither.tolist()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pe = state.get("prev_error")
        self._prev_error = None if pe is None else np.asarray(pe, dtype=np.float64)
        self._u = np.asarray(state.get("u", [0.0, 0.0, 0.0]), dtype=np.float64)
        self._dither = np.asarray(state.get("dither", [0.0, 0.0, 0.0]), dtype=np.float64)


def loop_radius(kp: float, ki: float, delay_s: int) -> float:
    """Largest |pole| of the sampled PI loop (module docstring): < 1 is stable, smaller decays faster."""
    coeffs = np.zeros(delay_s + 3)
    coeffs[0], coeffs[1] = 1.0, -1.0  # z^(d+2) - z^(d+1)
    coeffs[-2] += kp + ki  # + (kp + ki) z
    coeffs[-1] -= kp  # - kp
    return float(np.max(np.abs(np.roots(coeffs))))


def gain_scale(kp: float, ki: float, tuned_delay_s: int, delay_s: int) -> float:
    """The factor for both gains at `delay_s` (module docstring): SIMC's (tuned + 0.5) / (delay + 0.5), capped
    to the largest factor that keeps the loop's slowest pole within the tuned loop's."""
    simc = (tuned_delay_s + 0.5) / (delay_s + 0.5)
    limit = loop_radius(kp, ki, tuned_delay_s)
    if limit >= 1.0:
        raise ConfigError(f"agent.kp={kp}, agent.ki={ki} do not give a stable loop at tuned_delay_s="
                          f"{tuned_delay_s} (largest pole {limit:.3f}); nothing to schedule from")
    if loop_radius(kp * simc, ki * simc, delay_s) <= limit:
        return simc
    # The radius along the ray g * (kp, ki) falls, then rises past the margin: find where it crosses, the
    # largest g below SIMC's factor with radius <= limit (bisection between the best g and SIMC's).
    grid = np.linspace(0.0, simc, 201)[1:]
    radii = np.array([loop_radius(kp * g, ki * g, delay_s) for g in grid])
    best = int(np.argmin(radii))
    if radii[best] > limit:  # even the best factor is slower than the tuned loop: take the fastest
        return float(grid[best])
    lo, hi = float(grid[best]), simc
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if loop_radius(kp * mid, ki * mid, delay_s) <= limit else (lo, mid)
    return lo
