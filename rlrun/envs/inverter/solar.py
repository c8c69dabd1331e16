"""Rooftop PV power at 1-s resolution from data that ships inside pvlib (nothing is downloaded).

Pipeline for one episode window of day `doy` (0..364, local standard time of the TMY site):
1. Clear-sky irradiance (pvlib Ineichen model, Linke turbidity from pvlib's shipped LinkeTurbidities.h5) and
   solar position on a 1-min grid for the whole day (cached per site and day).
2. Hourly clearness index kt_h = GHI_TMY / mean(GHI_clearsky) from the site's TMY3 file (pvlib/data), which
   says how cloudy each hour of that day really was.
3. A stochastic cloud process gives second-scale variability whose hourly mean matches kt_h: a two-state
   (clear / shaded) Markov telegraph process. Shade spells last Exp(cloud_shade_s) seconds; clear spells are
   drawn so the stationary shaded fraction is f = (1 - kt) / (1 - k_shade), which keeps the expected kt equal
   to the TMY value. Cloud edges are smoothed by a first-order lag (cloud_edge_s, the time a cloud edge takes
   to cross the array), and a small AR(1) flicker rides on top in broken-cloud hours. Fully overcast hours
   (kt below k_shade) are a steady low level; clear hours stay at the clear-sky level.
4. GHI -> DNI/DHI by the Erbs decomposition, plane-of-array irradiance by the isotropic transposition, cell
   temperature by the SAPM model with the TMY air temperature and wind, DC power by PVWatts and AC power by
   the PVWatts inverter model (which clips at the inverter rating).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from rlrun.errors import ConfigError

#: TMY3 files shipped in pvlib/data that can be used as `env.site`.
SITES = ("723170TYA.CSV", "703165TY.csv")
YEAR = 2023  # a non-leap reference year for solar geometry and weekdays
K_SHADE = 0.3  # clearness index under a cumulus shadow (typical 0.2-0.4)


@dataclass(frozen=True)
class Site:
    name: str
    latitude: float
    longitude: float
    altitude: float
    tz_hours: float
    ghi: np.ndarray  # [8760] hourly means, row k covers hour [k, k+1) of the year
    temp_air: np.ndarray  # [8760] deg C
    wind_speed: np.ndarray  # [8760] m/s


def _pvlib_data_dir() -> str:
    import pvlib

    return os.path.join(os.path.dirname(pvlib.__file__), "data")


@lru_cache(maxsize=4)
def load_site(name: str) -> Site:
    """Read a TMY3 file that ships inside pvlib."""
    if name not in SITES:
        raise ConfigError(f"env.site must be one of {list(SITES)} (TMY3 files in pvlib), got {name!r}")
    import pvlib

    data, meta = pvlib.iotools.read_tmy3(os.path.join(_pvlib_data_dir(), name), map_variables=True)
    ghi = data["ghi"].to_numpy(dtype=np.float64)[:8760]
    return Site(
        name=name,
        latitude=float(meta["latitude"]),
        longitude=float(meta["longitude"]),
        altitude=float(meta["altitude"]),
        tz_hours=float(meta["TZ"]),
        ghi=ghi,
        temp_air=data["temp_air"].to_numpy(dtype=np.float64)[:8760],
        wind_speed=data["wind_speed"].to_numpy(dtype=np.float64)[:8760],
    )


def day_times(site: Site, doy: int, freq_s: int = 60) -> pd.DatetimeIndex:
    """Timestamps at the middle of each `freq_s` interval of day `doy` in the site's standard time."""
    tz = dt.timezone(dt.timedelta(hours=site.tz_hours))
    start = pd.Timestamp(dt.datetime(YEAR, 1, 1, tzinfo=tz)) + pd.Timedelta(days=int(doy))
    n = 86400 // freq_s
    return pd.date_range(start + pd.Timedelta(seconds=freq_s / 2), periods=n, freq=f"{freq_s}s")


@lru_cache(maxsize=4)
def _linke_turbidity(name: str) -> np.ndarray:
    """Daily Linke turbidity for the site (one read of pvlib's shipped LinkeTurbidities.h5)."""
    import pvlib

    site = load_site(name)
    tz = dt.timezone(dt.timedelta(hours=site.tz_hours))
    noons = pd.date_range(dt.datetime(YEAR, 1, 1, 12, tzinfo=tz), periods=365, freq="1D")
    return pvlib.clearsky.lookup_linke_turbidity(noons, site.latitude, site.longitude).to_numpy()


@dataclass(frozen=True)
class ClearSkyDay:
    zenith: np.ndarray  # [1440] apparent zenith, degrees
    azimuth: np.ndarray  # [1440]
    ghi: np.ndarray  # [1440] clear-sky GHI, W/m2
    kt_hour: np.ndarray  # [24] TMY clearness index of each hour
    temp_air: np.ndarray  # [24]
    wind_speed: np.ndarray  # [24]


@lru_cache(maxsize=512)
def clear_sky_day(name: str, doy: int) -> ClearSkyDay:
    import pvlib

    site = load_site(name)
    times = day_times(site, doy)
    pos = pvlib.solarposition.get_solarposition(times, site.latitude, site.longitude, altitude=site.altitude)
    zen = pos["apparent_zenith"].to_numpy()
    am_rel = pvlib.atmosphere.get_relative_airmass(zen)
    am_abs = pvlib.atmosphere.get_absolute_airmass(am_rel, pvlib.atmosphere.alt2pres(site.altitude))
    with np.errstate(divide="ignore", invalid="ignore"):  # night-time zenith > 90 gives NaN airmass
        cs = pvlib.clearsky.ineichen(zen, am_abs, _linke_turbidity(name)[doy], altitude=site.altitude)
    ghi_cs = np.nan_to_num(np.asarray(cs["ghi"], dtype=np.float64))
    hours = slice(doy * 24, doy * 24 + 24)
    cs_hour = ghi_cs.reshape(24, 60).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        kt = np.where(cs_hour > 20.0, site.ghi[hours] / cs_hour, 1.0)
    return ClearSkyDay(
        zenith=zen,
        azimuth=pos["azimuth"].to_numpy(),
        ghi=ghi_cs,
        kt_hour=np.clip(kt, 0.05, 1.15),
        temp_air=site.temp_air[hours].copy(),
        wind_speed=site.wind_speed[hours].copy(),
    )


def cloud_clearness(
    rng: np.random.Generator, kt_target: np.ndarray, shade_s: float, edge_s: float
) -> np.ndarray:
    """Per-second clearness index whose expectation follows `kt_target` (see the module docstring)."""
    n = kt_target.shape[0]
    clear_level = np.maximum(kt_target, 1.0)
    shade_level = np.minimum(kt_target, K_SHADE)
    f = np.clip((1.0 - kt_target) / (1.0 - K_SHADE), 0.0, 1.0)
    p_leave_shade = 1.0 / shade_s
    with np.errstate(divide="ignore"):
        p_enter_shade = np.where(f >= 1.0, 1.0, f / (shade_s * np.maximum(1.0 - f, 1e-9)))
    p_enter_shade = np.minimum(p_enter_shade, 1.0)
    u = rng.random(n)
    state = bool(rng.random() < f[0])
    s = np.empty(n)
    for i in range(n):  # a scalar loop: ~40 ms for a whole day, done once per episode
        if f[i] >= 1.0:
            state = True
        elif f[i] <= 0.0:
            state = False
        elif u[i] < (p_leave_shade if state else p_enter_shade[i]):
            state = not state
        s[i] = state
    a = 1.0 / max(edge_s, 1.0)
    s_smooth = lfilter([a], [1.0, a - 1.0], s, zi=[s[0] * (1.0 - a)])[0]
    kt = clear_level * (1.0 - s_smooth) + shade_level * s_smooth
    broken = (f > 0.0) & (f < 1.0)
    flicker = lfilter([0.1], [1.0, -0.9], rng.normal(0.0, 0.02 / np.sqrt(0.1 / 1.9), n))
    return np.maximum(kt * (1.0 + np.where(broken, flicker, 0.0)), 0.0)


def pv_trace(
    rng: np.random.Generator,
    site_name: str,
    doy: int,
    t0: int,
    n: int,
    *,
    pv_kwp: float,
    inverter_kw: float,
    tilt: float,
    azimuth: float,
    shade_s: float,
    edge_s: float,
) -> tuple[np.ndarray, np.ndarray]:
    """AC PV power [W] for seconds t0..t0+n-1 of day `doy`, and the clear-sky AC power for those seconds."""
    import pvlib

    day = clear_sky_day(site_name, doy)
    sec = np.arange(t0, t0 + n, dtype=np.float64) + 0.5
    minute_mid = np.arange(1440) * 60.0 + 30.0
    zen = np.interp(sec, minute_mid, day.zenith)
    azi = np.interp(sec, minute_mid, day.azimuth)
    ghi_cs = np.interp(sec, minute_mid, day.ghi)
    hour_mid = np.arange(24) * 3600.0 + 1800.0
    kt_target = np.interp(sec, hour_mid, day.kt_hour)
    kt = cloud_clearness(rng, kt_target, shade_s, edge_s)
    temp = np.interp(sec, hour_mid, day.temp_air)
    wind = np.interp(sec, hour_mid, day.wind_speed)

    def ac_power(ghi: np.ndarray) -> np.ndarray:
        parts = pvlib.irradiance.erbs(ghi, zen, doy + 1)
        poa = pvlib.irradiance.get_total_irradiance(
            tilt, azimuth, zen, azi, np.asarray(parts["dni"]), ghi, np.asarray(parts["dhi"])
        )["poa_global"]
        poa = np.nan_to_num(np.asarray(poa, dtype=np.float64))
        params = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]["open_rack_glass_polymer"]
        t_cell = pvlib.temperature.sapm_cell(poa, temp, wind, **params)
        pdc = pvlib.pvsystem.pvwatts_dc(poa, t_cell, pdc0=pv_kwp * 1000.0, gamma_pdc=-0.0037)
        pac = pvlib.inverter.pvwatts(np.asarray(pdc), pdc0=inverter_kw * 1000.0 / 0.96)
        return np.clip(np.nan_to_num(np.asarray(pac, dtype=np.float64)), 0.0, None)

    return ac_power(ghi_cs * kt), ac_power(ghi_cs)
