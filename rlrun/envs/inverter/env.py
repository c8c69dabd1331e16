"""Zero-export control of a three-phase PV household (rlrun/Inverter-v0), seed 002's task at 1-s resolution.

A household with rooftop PV must not export to the grid. Each step (one second) the controller sets per-phase
power targets for controllable loads ("slaves": diverters, water heaters, EV chargers) that soak up
surplus PV.

Physics per phase p, each second:
    target_p   = command issued `delay_s` steps ago (the seed's lookahead: multi-second actuation delay),
                 capped at the phase's slave capacity slaves_per_phase[p] * slave_max_w
    slave_p   += clip(target_p - slave_p, -ramp_w_per_s, +ramp_w_per_s)      (ramp limit)
    net_p      = pv / 3 - load_p - slave_p      (+ = export; a three-phase inverter feeds phases equally)
Metering (`metering`): "per_phase" (non-balancing meter: export = sum_p max(net_p, 0), import likewise; the
three actions genuinely matter) or "net" (balancing meter: export = max(sum_p net_p, 0)).

Traces: PV (rlrun.envs.inverter.solar: pvlib clear sky + the shipped TMY3 file + a stochastic cloud process)
and load (rlrun.envs.inverter.household: demandlib BDEW H25 + VDI 4655 + appliance events) are precomputed for
the whole episode at reset, and so is the measurement noise, so a step is a handful of numpy operations.

Episodes: `episode_s` seconds starting uniformly in [window_start_h, window_end_h - episode_s] (local standard
time) of a day drawn from the split (split.py): whole held-out weeks spread over the year, so every weekday
and season is in each held-out split; `split=test` (7 weeks by default) is what evaluation uses, `split=val`
(6 other weeks) is for model selection, `split=train` draws from the other 274 days, `split=all` from all.
Defaults: 30-min windows between 09:00 and 16:00, where the export problem is. With `warm_start` (default)
an episode starts as if a controller had been running: the slaves already absorb the surplus of second 0
and the pending commands equal it, so a window's metrics are not dominated by a start-up transient that no
real site sees mid-day; `warm_start=false` starts with all slaves off. A whole day is
`episode_s=86400 window_start_h=0 window_end_h=24`; daylight is `episode_s=50400 window_start_h=6
window_end_h=20`.

Observation (default delay_s=5 -> 30 dims). Powers are measured values (true + N(0, noise_w)) divided by
`obs_scale_w`; commands are fractions of max_power:
    0                 export_w measured under the metering rule (>= 0)  (the seed weights it highest)
    1..3              net power per phase (+ export, - import)          (weighted next in the seed's loss)
    4                 PV power
    5..7              household load per phase
    8..10             slave consumption per phase
    11..11+3*delay-1  commands issued but not yet in effect, oldest first, [phase a, b, c] each
    -4, -3            sin, cos of the time of day
    -2                clear-sky PV power (what pvlib predicts for a cloudless sky: a free forecast)
    -1                change of measured PV power over the last second (cloud edges)
Action: 3 per-phase targets in [-1, 1] mapped to [0, max_power] W as the seed's get_action does
(-1 = all slaves off; the "do nothing" action is `noop_action`).
PV curtailment (`curtailment=true`): a fourth action c in [-1, 1] sets the inverter's active-power limit
(SunSpec WMaxLimPct) to (1 - c) / 2 of its rating: -1 = no limit, +1 = no output. The inverter is local to the
meter, so the limit applies at the next second, without the slaves' delay and ramp: it is the one actuator
that can bring export back under the limit within G100's 5 s after a load drop. PV then feeds the phases
min(pv, limit) / 3 each; the lost PV energy is reported (curtailed_w, curtailed_kwh) and priced by the
reward group's `curtailment_weight` (required: free curtailment would simply switch the panels off). The
observation gets one more feature at the end, the limit in force as a fraction of the rating, and the
compliance counters are also reported as the site would have had them without curtailment (same slaves,
all PV): seconds_over_limit_without_curtailment, longest_excursion_s_without_curtailment,
g100_violations_without_curtailment. Energy balance per second and per episode:
    pv + import = load + export + curtailed + diverted.
Reward (weights from the `reward` group, see conf/reward/export.yaml), per second, in kW:
    r = -(export_weight * export_kw + import_weight * over_diversion_kw
          + churn_weight * sum_p |command_p - previous command_p| / 1000
          + over_limit_weight * [export > limit] + curtailment_weight * curtailed_kw)
where over_diversion = import caused by diversion (per phase min(import_p, slave_p)); import that the house
would draw anyway (load above PV) is not the controller's doing and is not penalised.
Compliance (UK G100 style): an excursion is a run of seconds with true export above `export_limit_w`; info
reports seconds_over_limit, longest_excursion_s and g100_violations (excursions longer than
g100_response_s, G100's 5 s to get back under the limit).
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from rlrun.envs.inverter.household import load_trace
from rlrun.envs.inverter.solar import SITES, clear_sky_day, load_site, pv_trace
from rlrun.envs.inverter.split import days_of, split_of_days
from rlrun.envs.rewards import ExportReward, as_reward
from rlrun.errors import ConfigError

COMPLIANCE = ("seconds_over_limit", "longest_excursion_s", "g100_violations")
N_FIXED = 11  # features before the pending-command block
N_TAIL = 4  # features after it


def obs_dim(delay_s: int) -> int:
    return N_FIXED + 3 * delay_s + N_TAIL


def pending_slice(delay_s: int) -> slice:
    """Where the not-yet-effective commands sit in the observation (fractions of max_power, oldest first)."""
    return slice(N_FIXED, N_FIXED + 3 * delay_s)


def is_test_day(doy: np.ndarray | int, holdout_every_weeks: int = 8) -> np.ndarray | bool:
    return split_of_days(holdout_every_weeks)[np.asarray(doy)] == 2


class InverterEnv(gym.Env):
    metadata = {"render_modes": []}
    tensorboard_layout: ClassVar[dict] = {
        "inverter": {
            "power": ["Multiline",
                      ["env/export_w", "env/import_w", "env/diverted_w", "env/over_diversion_w",
                       "env/curtailed_w"]],
            "energy": ["Multiline", ["env/export_kwh", "env/import_kwh", "env/over_diversion_kwh",
                                     "env/curtailed_kwh"]],
            "compliance": ["Multiline", ["env/seconds_over_limit", "env/longest_excursion_s"]],
            "reward_terms": ["Multiline", ["env/r_export", "env/r_import", "env/r_churn", "env/r_over_limit",
                                           "env/r_curtailment"]],
        },
    }
    #: constructor overrides per evaluation split: in-training evaluation and best.pt selection on the
    #: validation weeks, the final report and `rlrun eval` on the test weeks (rlrun.collect.factory)
    eval_kwargs: ClassVar[dict[str, dict[str, Any]]] = {"val": {"split": "val"}, "test": {"split": "test"}}

    def __init__(
        self,
        site: str = "723170TYA.CSV",
        pv_kwp: float = 8.0,
        inverter_kw: float = 8.0,
        tilt: float = 30.0,
        azimuth: float = 180.0,
        annual_kwh: float = 4500.0,
        appliance_share: float = 0.3,
        slaves_per_phase: list[int] | None = None,
        slave_max_w: float = 2500.0,
        max_power: float = 5000.0,
        ramp_w_per_s: float = 1000.0,
        delay_s: int = 5,
        noise_w: float = 15.0,
        metering: str = "per_phase",
        export_limit_w: float = 50.0,
        g100_response_s: int = 5,
        episode_s: int = 1800,
        window_start_h: float = 9.0,
        window_end_h: float = 16.0,
        split: str = "train",
        holdout_every_weeks: int = 8,
        day: int = -1,
        cloud_shade_s: float = 60.0,
        cloud_edge_s: float = 4.0,
        obs_scale_w: float = 5000.0,
        warm_start: bool = True,
        curtailment: bool = False,
        reward: Any = None,
    ) -> None:
        slaves = [2, 1, 1] if slaves_per_phase is None else [int(x) for x in slaves_per_phase]
        if len(slaves) != 3 or min(slaves) < 0:
            raise ConfigError(f"env.slaves_per_phase must be 3 non-negative counts, got {slaves_per_phase}")
        if site not in SITES:
            raise ConfigError(f"env.site must be one of {list(SITES)}, got {site!r}")
        if metering not in ("per_phase", "net"):
            raise ConfigError(f"env.metering must be one of ['per_phase', 'net'], got {metering!r}")
        if not 0 <= delay_s <= 60:
            raise ConfigError(f"env.delay_s must be in [0, 60], got {delay_s}")
        if not 0.0 <= window_start_h < window_end_h <= 24.0:
            raise ConfigError("env.window_start_h < env.window_end_h must both lie in [0, 24]")
        if episode_s < 1 or episode_s > (window_end_h - window_start_h) * 3600:
            raise ConfigError(
                f"env.episode_s must be in [1, (window_end_h - window_start_h) * 3600], got {episode_s}"
            )
        if not -1 <= day < 365:
            raise ConfigError(f"env.day must be -1 (random) or a day of year in [0, 364], got {day}")
        for key, val in (("pv_kwp", pv_kwp), ("inverter_kw", inverter_kw), ("max_power", max_power),
                         ("ramp_w_per_s", ramp_w_per_s), ("obs_scale_w", obs_scale_w),
                         ("cloud_shade_s", cloud_shade_s), ("cloud_edge_s", cloud_edge_s)):
            if not val > 0:
                raise ConfigError(f"env.{key} must be > 0, got {val}")
        if not 0.0 <= appliance_share < 1.0:
            raise ConfigError(f"env.appliance_share must be in [0, 1), got {appliance_share}")
        self.reward = as_reward(reward, ExportReward)
        self.curtailment = bool(curtailment)
        if self.curtailment and not self.reward.curtailment_weight:
            raise ConfigError("env.curtailment=true needs a price for the lost PV energy: set "
                              "reward.curtailment_weight > 0 (per kW curtailed, e.g. 1.0 = the import price)")
        self.site = site
        self.pv_kwp, self.inverter_kw, self.tilt, self.azimuth = pv_kwp, inverter_kw, tilt, azimuth
        self.annual_kwh, self.appliance_share = float(annual_kwh), float(appliance_share)
        self.slaves_per_phase = slaves
        self.capacity_w = np.minimum(np.asarray(slaves, dtype=np.float64) * slave_max_w, max_power)
        self.max_power = float(max_power)
        self.ramp = float(ramp_w_per_s)
        self.delay_s = int(delay_s)
        self.noise_w = float(noise_w)
        self.metering = metering
        self.export_limit_w = float(export_limit_w)
        self.g100_response_s = int(g100_response_s)
        self.episode_s = int(episode_s)
        self.window = (float(window_start_h), float(window_end_h))
        self.split, self.holdout_every_weeks, self.fixed_day = split, int(holdout_every_weeks), int(day)
        self.cloud_shade_s, self.cloud_edge_s = float(cloud_shade_s), float(cloud_edge_s)
        self.obs_scale = float(obs_scale_w)
        self.warm_start = bool(warm_start)
        self.days = days_of(split, self.holdout_every_weeks)
        load_site(site)  # fail fast on a broken pvlib install

        dim = obs_dim(self.delay_s) + int(self.curtailment)
        n_act = 4 if self.curtailment else 3
        self.observation_space = spaces.Box(-10.0, 10.0, shape=(dim,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(n_act,), dtype=np.float32)
        self.noop_action = np.full(n_act, -1.0, dtype=np.float32)  # slaves off, no curtailment
        self.rating_w = float(inverter_kw) * 1000.0
        self._trace: dict[str, np.ndarray] = {}
        self._t = 0

    def default_action(self) -> np.ndarray:
        """The site without a controller: all slaves off (what `baseline=static` evaluates)."""
        return self.noop_action.copy()

    # ---- traces ---------------------------------------------------------------------------------------
    def _draw_episode(self) -> None:
        rng = self.np_random
        doy = self.fixed_day if self.fixed_day >= 0 else int(rng.choice(self.days))
        lo, hi = self.window
        latest = int(hi * 3600) - self.episode_s
        t0 = int(rng.integers(int(lo * 3600), latest + 1))
        n = self.episode_s + 1  # sample 0 is the state at reset
        pv, pv_clear = pv_trace(
            rng, self.site, doy, t0, n, pv_kwp=self.pv_kwp, inverter_kw=self.inverter_kw, tilt=self.tilt,
            azimuth=self.azimuth, shade_s=self.cloud_shade_s, edge_s=self.cloud_edge_s,
        )
        day = clear_sky_day(self.site, doy)
        shares = rng.dirichlet(np.full(3, 6.0))
        load = load_trace(
            rng, doy, t0, n, annual_kwh=self.annual_kwh, phase_shares=shares,
            appliance_share=self.appliance_share, mean_temp_c=float(day.temp_air.mean()),
            day_clearness=float(np.average(day.kt_hour, weights=day.ghi.reshape(24, 60).mean(1) + 1e-9)),
        )
        self._trace = {
            "pv": pv, "pv_clear": pv_clear, "load": load,
            "noise": rng.normal(0.0, self.noise_w, size=(n, 11)) if self.noise_w > 0 else np.zeros((n, 11)),
            "meta": np.array([doy, t0], dtype=np.int64),
        }

    # ---- gym API --------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._draw_episode()
        self._t = 0
        if self.warm_start:  # a controller has been running: slaves absorb the surplus at t=0
            surplus = self._trace["pv"][0] / 3.0 - self._trace["load"][0]
            start = np.clip(surplus, 0.0, self.capacity_w)
        else:
            start = np.zeros(3)
        self._slave = start.copy()
        self._queue = np.tile(start, (self.delay_s, 1))  # commands in W, oldest first
        self._prev_cmd = start.copy()
        self._limit = self.rating_w  # inverter active-power limit in force (curtailment)
        self._prev_pv_meas = float(self._trace["pv"][0] + self._trace["noise"][0, 4])
        self._totals = np.zeros(7)  # export, import, diverted, over_diversion, pv, load, curtailed  [W*s]
        self._over, self._run, self._longest, self._violations = 0, 0, 0, 0
        self._nc = [0, 0, 0, 0]  # the same counters for the export without curtailment
        obs, _ = self._observe()
        return obs, {"day": int(self._trace["meta"][0]), "start_s": int(self._trace["meta"][1])}

    def _pv_out(self, t: int) -> float:
        """PV power the inverter delivers: the panels' output under the curtailment limit."""
        pv = float(self._trace["pv"][t])
        return min(pv, self._limit) if self.curtailment else pv

    def _flows(self, t: int) -> tuple[np.ndarray, float, float, float]:
        net = self._pv_out(t) / 3.0 - self._trace["load"][t] - self._slave
        if self.metering == "per_phase":
            exp = float(np.maximum(net, 0.0).sum())
            imp_p = np.maximum(-net, 0.0)
            return net, exp, float(imp_p.sum()), float(np.minimum(imp_p, self._slave).sum())
        g = float(net.sum())
        imp = max(-g, 0.0)
        return net, max(g, 0.0), imp, min(imp, float(self._slave.sum()))

    def _observe(self) -> tuple[np.ndarray, dict[str, float]]:
        t = self._t
        net, exp, imp, overdiv = self._flows(t)
        noise = self._trace["noise"][t]
        net_m = net + noise[1:4]
        if self.metering == "per_phase":
            exp_m = float(np.maximum(net_m, 0.0).sum())
        else:
            exp_m = max(float(net_m.sum()), 0.0)
        pv_m = float(self._pv_out(t) + noise[4])
        s = self.obs_scale
        tod = (self._trace["meta"][1] + t) / 86400.0 * 2.0 * np.pi
        obs = np.concatenate([
            [exp_m / s], net_m / s, [pv_m / s], (self._trace["load"][t] + noise[5:8]) / s,
            (self._slave + noise[8:11]) / s, self._queue.reshape(-1) / self.max_power,
            [np.sin(tod), np.cos(tod), self._trace["pv_clear"][t] / s, (pv_m - self._prev_pv_meas) / s],
            [self._limit / self.rating_w] if self.curtailment else [],
        ])
        self._prev_pv_meas = pv_m
        flows = {"net": net, "export_w": exp, "import_w": imp, "over_diversion_w": overdiv}
        return np.clip(obs, -10.0, 10.0).astype(np.float32), flows

    def step(self, action):
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        n_act = self.action_space.shape[0]
        if a.shape != (n_act,) or not np.all(np.isfinite(a)):
            raise ValueError(f"InverterEnv.step needs {n_act} finite actions in [-1, 1], got {action!r}")
        if self.curtailment:  # the inverter's own limit: in force at the next second
            self._limit = (1.0 - float(np.clip(a[3], -1.0, 1.0))) * 0.5 * self.rating_w
        cmd = (np.clip(a[:3], -1.0, 1.0) + 1.0) * 0.5 * self.max_power
        if self.delay_s:
            target = self._queue[0].copy()
            self._queue[:-1] = self._queue[1:]
            self._queue[-1] = cmd
        else:
            target = cmd
        target = np.minimum(target, self.capacity_w)
        self._slave = self._slave + np.clip(target - self._slave, -self.ramp, self.ramp)
        self._t += 1
        obs, f = self._observe()
        exp, imp, overdiv = f["export_w"], f["import_w"], f["over_diversion_w"]
        diverted = float(self._slave.sum())
        churn_kw = float(np.abs(cmd - self._prev_cmd).sum()) / 1000.0
        self._prev_cmd = cmd
        over = exp > self.export_limit_w
        self._over, self._run, self._longest, self._violations = self._count(
            over, self._over, self._run, self._longest, self._violations)
        pv, load = float(self._trace["pv"][self._t]), float(self._trace["load"][self._t].sum())
        curtailed = pv - self._pv_out(self._t)
        metrics = {"export_w": exp, "over_diversion_w": overdiv, "churn_kw": churn_kw, "over_limit": over}
        if self.curtailment:
            metrics["curtailed_w"] = curtailed
        terms = self.reward.terms(metrics)
        if self.curtailment:
            net_all_pv = f["net"] + curtailed / 3.0  # the same slaves and load with the panels unlimited
            exp_nc = float(np.maximum(net_all_pv, 0.0).sum()) if self.metering == "per_phase" \
                else max(float(net_all_pv.sum()), 0.0)
            self._nc = list(self._count(exp_nc > self.export_limit_w, *self._nc))
        reward = float(sum(terms.values()))
        self._totals += (exp, imp, diverted, overdiv, pv, load, curtailed)
        truncated = self._t >= self.episode_s
        info: dict[str, Any] = {
            "export_w": exp, "import_w": imp, "diverted_w": diverted, "over_diversion_w": overdiv,
            "pv_w": pv, "load_w": load, **terms,
        }
        if self.curtailment:
            info["curtailed_w"] = curtailed
        if truncated:
            if self._run > self.g100_response_s:
                self._violations += 1
            kwh = self._totals / 3.6e6
            info.update(
                export_kwh=float(kwh[0]), import_kwh=float(kwh[1]), diverted_kwh=float(kwh[2]),
                over_diversion_kwh=float(kwh[3]), pv_kwh=float(kwh[4]), load_kwh=float(kwh[5]),
                seconds_over_limit=float(self._over), over_limit_fraction=self._over / self.episode_s,
                longest_excursion_s=float(self._longest), g100_violations=float(self._violations),
                day=float(self._trace["meta"][0]),
            )
            if self.curtailment:
                over_nc, run_nc, longest_nc, violations_nc = self._nc
                violations_nc += int(run_nc > self.g100_response_s)
                info.update(curtailed_kwh=float(kwh[6]),
                            seconds_over_limit_without_curtailment=float(over_nc),
                            longest_excursion_s_without_curtailment=float(longest_nc),
                            g100_violations_without_curtailment=float(violations_nc))
        return obs, reward, False, truncated, info

    def _count(self, over: bool, seconds: int, run: int, longest: int, violations: int
               ) -> tuple[int, int, int, int]:
        """Compliance counters after one second: seconds over, current run, longest run, G100 violations
        (runs longer than g100_response_s, counted when they end)."""
        if over:
            return seconds + 1, run + 1, max(longest, run + 1), violations
        return seconds, 0, longest, violations + int(run > self.g100_response_s)

    # ---- exact resume ---------------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """Tensors and plain Python only, so checkpoints load with torch.load(weights_only=True)."""
        if not self._trace:
            return {"reset": False}

        def t(x: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.array(x, copy=True))

        return {
            "reset": True,
            "trace": {k: t(v) for k, v in self._trace.items()},
            "t": self._t, "slave": t(self._slave), "queue": t(self._queue),
            "prev_cmd": t(self._prev_cmd), "prev_pv": self._prev_pv_meas, "totals": t(self._totals),
            "counters": [self._over, self._run, self._longest, self._violations],
            "counters_nc": list(self._nc), "limit": self._limit,
            "rng": self.np_random.bit_generator.state,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        if not state.get("reset", True):
            return
        self._trace = {k: np.asarray(v).copy() for k, v in state["trace"].items()}
        self._t = int(state["t"])
        self._slave = np.asarray(state["slave"], dtype=np.float64).copy()
        self._queue = np.asarray(state["queue"], dtype=np.float64).copy()
        self._prev_cmd = np.asarray(state["prev_cmd"], dtype=np.float64).copy()
        self._prev_pv_meas = float(state["prev_pv"])
        self._totals = np.asarray(state["totals"], dtype=np.float64).copy()
        self._over, self._run, self._longest, self._violations = (int(x) for x in state["counters"])
        self._nc = [int(x) for x in state.get("counters_nc", [0, 0, 0, 0])]
        self._limit = float(state.get("limit", self.rating_w))
        self.np_random.bit_generator.state = state["rng"]
