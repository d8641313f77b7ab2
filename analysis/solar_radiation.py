"""Potential incoming solar radiation (PISR), the model of SAGA's ta_lighting 2 with the
settings the paper used: 1 May to 31 August in daily steps, half-hour steps through each
day, lumped atmospheric transmittance 70 %, solar constant 1367 W/m2, result as the daily
mean in kWh/m2.

For every sampled moment with the Sun above the horizon, a cell receives

  direct  = S0 * tau^(m * p) * cos(i)     (0 when cos(i) <= 0 or the cell is in shadow)
  diffuse = S0 * (0.271 - 0.294 * tau^(m * p)) * h * SVF

S0 is the solar constant corrected for the Earth's orbit (1 + 0.03344 cos(2 pi doy / 365.25
- 0.048869)); tau the lumped transmittance; m the optical air mass (1/sin h above 30 deg,
List's 1968 table below, as in TAPES-G); p = 10^(-5.4667e-5 z) the pressure correction for
the cell elevation z; i the angle between the Sun and the slope normal (slope and aspect
from terrain.slope_aspect, Zevenbergen & Thorne, as SAGA); h the Sun's height in radians
(SAGA 8.5 scales the diffuse term by it); SVF the local sky view factor (1 + cos slope) / 2
after Oke (1988), SAGA's default when no sky-view grid is given. Both terms are clipped to
[0, S0] and summed over the moments times the hour step.

Sun positions: Meeus' low-precision solar coordinates (0.01 deg), for the latitude of each
polygon (rounded to 0.01 deg) at longitude 0, so hours are local solar time as in SAGA's
"constant latitude" mode. Hours run 0 <= t < 24 (SAGA also samples t = 24, which counts the
next midnight twice during polar day).

Shadows: a cell is in shadow when the terrain towards the Sun rises above the Sun, i.e. when
the horizon angle in the Sun's azimuth exceeds its height. Horizon angles are traced once
per cell in `n_directions` azimuths, stepping one cell along the major axis and reading the
nearest cell as SAGA's 'slim' shadow tracing does, up to `max_distance_m`; the horizon in
the Sun's azimuth is interpolated between the two nearest traced azimuths.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Tuple

import numpy as np

KWH_CHUNK_CELLS = 256  # cells per vectorised block of (cells x moments) arrays

# Optical air mass for zenith angles 60..91 deg in 1 deg steps (List 1968, p. 422; TAPES-G)
_AIR_MASS_TABLE = np.array([
    2.00, 2.06, 2.12, 2.19, 2.27, 2.36, 2.45, 2.55, 2.65, 2.77, 2.90, 3.05, 3.21, 3.39, 3.59, 3.82,
    4.07, 4.37, 4.72, 5.12, 5.60, 6.18, 6.88, 7.77, 8.90, 10.39, 12.44, 15.36, 19.79, 26.96, 26.96, 26.96,
])


@dataclass(frozen=True)
class SolarSettings:
    first_day: dt.date = dt.date(2019, 5, 1)
    last_day: dt.date = dt.date(2019, 8, 31)
    days_step: int = 1
    hour_step: float = 0.5
    transmittance: float = 0.70
    solar_constant_w: float = 1367.0
    pressure_mbar: float = 1013.0
    n_directions: int = 64
    max_distance_m: float = 20_000.0

    @property
    def days(self) -> list:
        n = (self.last_day - self.first_day).days
        return [self.first_day + dt.timedelta(days=d) for d in range(0, n + 1, max(1, self.days_step))]


@dataclass(frozen=True)
class SunTable:
    """The daylight moments of a date window at one latitude."""

    height: np.ndarray  # radians, > 0
    azimuth: np.ndarray  # radians clockwise from north
    solar_constant_kw: np.ndarray  # kW/m2, orbit-corrected
    n_days: int
    hour_step: float


def julian_day(date: dt.date, hour: float) -> float:
    return date.toordinal() + 1721424.5 + hour / 24.0


def sun_position(jd: np.ndarray, latitude_rad: float, longitude_rad: float = 0.0) -> Tuple[np.ndarray, np.ndarray]:
    """(height, azimuth) in radians after Meeus' low-precision solar coordinates."""
    t = (jd - 2451545.0) / 36525.0
    mean_anomaly = np.radians(357.52910 + 35999.05030 * t - 0.0001559 * t * t - 0.00000048 * t**3)
    true_longitude = np.radians(
        280.46645 + 36000.76983 * t + 0.0003032 * t * t
        + (1.914600 - 0.004817 * t - 0.000014 * t * t) * np.sin(mean_anomaly)
        + (0.019993 - 0.000101 * t) * np.sin(2 * mean_anomaly)
        + 0.000290 * np.sin(3 * mean_anomaly)
    )
    obliquity = math.radians(23.43929111)
    x = np.cos(true_longitude)
    y = math.cos(obliquity) * np.sin(true_longitude)
    z = math.sin(obliquity) * np.sin(true_longitude)
    r = np.sqrt(1.0 - z * z)
    declination = np.arctan2(z, r)
    right_ascension = 2.0 * np.arctan2(y, x + r)
    sidereal = longitude_rad + np.radians(
        280.46061837 + 360.98564736629 * (jd - 2451545.0) + t * t * (0.000387933 - t / 38710000.0)
    )
    hour_angle = sidereal - right_ascension
    sin_lat, cos_lat = math.sin(latitude_rad), math.cos(latitude_rad)
    height = np.arcsin(sin_lat * np.sin(declination) + cos_lat * np.cos(declination) * np.cos(hour_angle))
    azimuth = np.arctan2(
        -np.sin(hour_angle) * np.cos(declination),
        cos_lat * np.sin(declination) - sin_lat * np.cos(declination) * np.cos(hour_angle),
    )
    return height, np.mod(azimuth, 2 * np.pi)


@lru_cache(maxsize=256)
def sun_table(latitude_deg: float, settings: SolarSettings = SolarSettings()) -> SunTable:
    days = settings.days
    hours = np.arange(0.0, 24.0 - 1e-9, settings.hour_step)
    jd = np.array([julian_day(d, h) for d in days for h in hours])
    doy = np.repeat([d.timetuple().tm_yday for d in days], len(hours)).astype(np.float64)
    height, azimuth = sun_position(jd, math.radians(latitude_deg))
    s0 = settings.solar_constant_w / 1000.0 * (1.0 + 0.03344 * np.cos(doy * 2.0 * np.pi / 365.25 - 0.048869))
    up = height > 0
    return SunTable(height[up], azimuth[up], s0[up], len(days), settings.hour_step)


def optical_air_mass(height: np.ndarray) -> np.ndarray:
    zenith_below_60 = 30.0 - np.degrees(height)  # degrees of zenith beyond 60
    index = np.clip(np.floor(zenith_below_60).astype(int), 0, len(_AIR_MASS_TABLE) - 2)
    table = _AIR_MASS_TABLE[index] + (zenith_below_60 - index) * (_AIR_MASS_TABLE[index + 1] - _AIR_MASS_TABLE[index])
    return np.where(height > math.radians(30.0), 1.0 / np.sin(height), table)


def horizon_tangents(
    z: np.ndarray, rows: np.ndarray, cols: np.ndarray, cellsize_m: float, n_directions: int, max_distance_m: float
) -> np.ndarray:
    """tan(horizon angle) seen from the given cells of z in n_directions azimuths
    (column j: azimuth 2 pi j / n, clockwise from north); -inf where nothing is above.

    Traces one cell per step along the major axis and reads the nearest cell, as SAGA's
    slim shadow; NaN cells are skipped; a direction stops at the window edge, at
    max_distance_m, or when no cell of the window could raise any horizon any more.
    """
    n = rows.size
    out = np.full((n, n_directions), -np.inf, dtype=np.float64)
    if n == 0:
        return out
    height, width = z.shape
    z0 = z[rows, cols]
    z_top = np.nanmax(z)
    for j in range(n_directions):
        azimuth = 2.0 * math.pi * j / n_directions
        dx, dn = math.sin(azimuth), math.cos(azimuth)
        major = max(abs(dx), abs(dn))
        dx, dn = dx / major, dn / major
        step_m = math.hypot(dx, dn) * cellsize_m
        best = out[:, j]
        max_steps = int(max_distance_m / step_m)
        active = np.ones(n, dtype=bool)
        for k in range(1, max_steps + 1):
            r = rows - int(math.floor(k * dn + 0.5))  # north is up: rows decrease
            c = cols + int(math.floor(k * dx + 0.5))
            inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
            active &= inside
            if not active.any():
                break
            idx = np.flatnonzero(active)
            v = z[r[idx], c[idx]]
            tangent = (v - z0[idx]) / (k * step_m)
            better = tangent > best[idx]  # NaN compares False, so nodata is skipped
            best[idx[better]] = tangent[better]
            if k % 8 == 0:
                # nothing beyond this distance can beat the current horizon
                active &= (z_top - z0) / (k * step_m) > best
        out[:, j] = best
    return out


def daily_insolation(
    elevation: np.ndarray,
    slope: np.ndarray,
    aspect: np.ndarray,
    horizon: np.ndarray,
    table: SunTable,
    settings: SolarSettings = SolarSettings(),
) -> np.ndarray:
    """Mean daily potential incoming solar radiation (kWh/m2) of each cell."""
    n = elevation.size
    result = np.full(n, np.nan)
    if n == 0 or table.height.size == 0:
        return np.where(np.isnan(elevation), np.nan, 0.0) if n else result
    h, az, s0 = table.height, table.azimuth, table.solar_constant_kw
    sin_h, cos_h, tan_h = np.sin(h), np.cos(h), np.tan(h)
    sun_east, sun_north = cos_h * np.sin(az), cos_h * np.cos(az)
    air_mass = optical_air_mass(h)
    log_tau = math.log(settings.transmittance)
    # horizon interpolation between the two traced azimuths around the Sun's
    position = az / (2.0 * math.pi / settings.n_directions)
    j0 = np.floor(position).astype(int) % settings.n_directions
    j1 = (j0 + 1) % settings.n_directions
    w1 = position - np.floor(position)
    for start in range(0, n, KWH_CHUNK_CELLS):
        sl = slice(start, min(start + KWH_CHUNK_CELLS, n))
        s = slope[sl][:, None]
        a = np.nan_to_num(aspect[sl], nan=0.0)[:, None]  # flat cells: sin(slope) = 0 anyway
        cos_incidence = np.cos(s) * sin_h + np.sin(s) * (np.sin(a) * sun_east + np.cos(a) * sun_north)
        hz = horizon[sl]
        shaded = hz[:, j0] * (1.0 - w1) + hz[:, j1] * w1 >= tan_h
        pressure = settings.pressure_mbar / 10.0 ** (elevation[sl] * 5.4667e-5) / 1013.0
        direct_share = np.exp(log_tau * pressure[:, None] * air_mass[None, :])
        direct = np.where(shaded | (cos_incidence <= 0), 0.0, cos_incidence * direct_share * s0)
        svf = (1.0 + np.cos(s)) / 2.0
        diffuse = s0 * (0.271 - 0.294 * direct_share) * h * svf
        total = np.clip(direct, 0.0, s0) + np.clip(diffuse, 0.0, s0)
        result[sl] = total.sum(axis=1) * table.hour_step / table.n_days
    result[np.isnan(elevation) | np.isnan(slope)] = np.nan
    return result
