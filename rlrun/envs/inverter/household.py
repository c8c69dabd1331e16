"""Per-phase household load at 1-s resolution from demandlib's shipped profiles plus appliance events.

Layers, for day `doy` of the reference year:
1. Day energy and 15-min shape: the BDEW H25 standard household profile (demandlib.bdew.H25, the 2025
   dynamic household profile, with its month / weekday / holiday structure), scaled to `annual_kwh`.
2. Minute shape: the VDI 4655 single-family-house (EFH) typical day at 1-min resolution that demandlib ships
   (vdi_data/VDI_4655_Typtage.csv). The type day is picked the way VDI 4655 does: season from the day's mean
   air temperature (W < 5 C <= U <= 15 C < S), Sunday vs working day, clear (H) vs cloudy (B) from the day's
   clearness. It only modulates H25 inside each quarter hour, so the 15-min energy stays BDEW's.
3. A share `appliance_share` of that energy is taken out of the smooth base and put back as stochastic
   appliance events (kettle, microwave, hob, ...): a compound Poisson process whose rate follows the profile
   so that the expected event energy equals the removed share, each event on one phase drawn by the phase
   shares. These are the sharp, second-scale steps a real household shows and a 15-min profile hides.
4. The smooth base is split over the phases by per-episode phase shares, with 3 % AR(1) flicker.
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from rlrun.envs.inverter.solar import YEAR

# (name, power range W, duration range s). Mean energies set the event rate (see `load_trace`).
APPLIANCES: tuple[tuple[str, tuple[float, float], tuple[float, float]], ...] = (
    ("kettle", (1800.0, 3000.0), (90.0, 240.0)),
    ("microwave", (700.0, 1300.0), (60.0, 300.0)),
    ("toaster", (800.0, 1200.0), (120.0, 240.0)),
    ("hob", (1000.0, 2000.0), (300.0, 1200.0)),
    ("hair_dryer", (1200.0, 2000.0), (120.0, 600.0)),
    ("vacuum", (600.0, 1200.0), (300.0, 900.0)),
    ("washer_heating", (1800.0, 2200.0), (600.0, 1200.0)),
)
_MEAN_EVENT_J = float(np.mean([np.mean(p) * np.mean(d) for _, p, d in APPLIANCES]))
_MAX_EVENT_S = int(max(d[1] for _, _, d in APPLIANCES))


@lru_cache(maxsize=1)
def h25_watts_per_kwh_year() -> np.ndarray:
    """[365, 96] H25 power in W for a household using 1 kWh per year (demandlib gives kW per GWh/yr)."""
    from demandlib import bdew

    idx = pd.date_range(f"{YEAR}-01-01", periods=365 * 96, freq="15min")
    kw_per_gwh = bdew.H25(idx).to_numpy(dtype=np.float64)
    return (kw_per_gwh * 1000.0 / 1e6).reshape(365, 96)


@lru_cache(maxsize=1)
def vdi4655_minute_profiles() -> dict[str, np.ndarray]:
    """VDI 4655 EFH type days: code -> [1440] share of the day's electricity in each minute."""
    import demandlib.vdi

    path = os.path.join(os.path.dirname(demandlib.vdi.__file__), "vdi_data", "VDI_4655_Typtage.csv")
    table = pd.read_csv(path)
    efh = table[table["Haus"] == "EFH"]
    return {code: grp["F_el_n_TT"].to_numpy(dtype=np.float64) for code, grp in efh.groupby("typtag")}


def vdi_type_day(doy: int, mean_temp_c: float, day_clearness: float) -> str:
    season = "W" if mean_temp_c < 5.0 else ("U" if mean_temp_c <= 15.0 else "S")
    weekday = pd.Timestamp(f"{YEAR}-01-01").dayofweek + doy
    day = "S" if weekday % 7 == 6 else "W"
    if season == "S":
        return f"S{day}X"
    return f"{season}{day}{'H' if day_clearness >= 0.5 else 'B'}"


def load_trace(
    rng: np.random.Generator,
    doy: int,
    t0: int,
    n: int,
    *,
    annual_kwh: float,
    phase_shares: np.ndarray,
    appliance_share: float,
    mean_temp_c: float,
    day_clearness: float,
) -> np.ndarray:
    """[n, 3] household load in W for seconds t0..t0+n-1 of day `doy`."""
    h25 = h25_watts_per_kwh_year()[doy] * annual_kwh  # [96] W
    vdi = vdi4655_minute_profiles()[vdi_type_day(doy, mean_temp_c, day_clearness)]
    quarter_mean = vdi.reshape(96, 15).mean(axis=1)
    modulation = vdi / np.maximum(np.repeat(quarter_mean, 15), 1e-12)
    profile_min = np.repeat(h25, 15) * modulation  # [1440] W, 15-min energy equal to H25's

    sec = np.arange(t0, t0 + n)
    minute = np.clip(sec // 60, 0, 1439)
    base = profile_min[minute] * (1.0 - appliance_share)
    # AR(1) flicker, time constant 10 s, stationary std 3 %.
    innovations = rng.normal(0.0, 0.03 / np.sqrt(0.1 / 1.9), size=(n, 3))
    flicker = 1.0 + lfilter([0.1], [1.0, -0.9], innovations, axis=0)
    load = base[:, None] * phase_shares[None, :] * flicker

    # Appliance events that start in [t0 - longest event, t0 + n) so events running into the window count.
    lo = max(0, (t0 - _MAX_EVENT_S) // 60)
    hi = min(1440, (t0 + n) // 60 + 1)
    rate_per_min = appliance_share * profile_min[lo:hi] * 60.0 / _MEAN_EVENT_J
    counts = rng.poisson(rate_per_min)
    for m_off, k in zip(np.nonzero(counts)[0], counts[np.nonzero(counts)[0]], strict=True):
        for _ in range(int(k)):
            _, p_rng, d_rng = APPLIANCES[int(rng.integers(len(APPLIANCES)))]
            start = (lo + int(m_off)) * 60 + int(rng.integers(60))
            dur = int(rng.uniform(*d_rng))
            power = float(rng.uniform(*p_rng))
            phase = int(rng.choice(3, p=phase_shares))
            a, b = max(start, t0) - t0, min(start + dur, t0 + n) - t0
            if b > a:
                load[a:b, phase] += power
    return load
