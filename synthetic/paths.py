"""Camera drives of the "wild" world: a turn of 20-90 degrees, stops, speed changes and lane changes.

A :class:`DrivePlan` is drawn per sequence from :class:`PathRanges` with its own random stream
``default_rng([seed, sequence, 2])``. Distances are arc lengths along the road's centreline (metres,
measured from the camera's position at t = 0), times in seconds, angles in radians (positive = turning
right, i.e. +z towards +x, as headings in :mod:`synthetic.scene`).

- **Speed** v(t) is piecewise linear (so the travelled distance s(t) is its exact piecewise-quadratic
  integral): a cruising speed in [``speed_min``, ``speed_max``] m/s, then, with probability
  ``stop_probability``, a stop (braking at 2.5-4.5 m/s^2, standing 0.4-1.2 s, pulling away at 1.5-3 m/s^2
  to a new speed), otherwise two speed changes at 1.5-3.5 m/s^2.
- **Turn**: the road bends by a heading change drawn uniformly in [``turn_min_deg``, ``turn_max_deg``]
  (random side) over an arc of length L with curvature kappa(s) = (2 dpsi / L) sin^2(pi u), u = (s - start) / L,
  i.e. a smooth corner whose tightest radius is L / (2 |dpsi|), drawn in [12, 25] m, never below
  ``MIN_TURN_RADIUS`` (12 m), and at most 70 % of the drive when that allows the 12 m radius. After a
  stop the turn starts where the camera stopped (a junction). The whole turn lies inside the drive: when the
  drive is too short for it, the speed profile is scaled up until it fits, so the requested heading change
  is always reached.
- **Lane change** (probability ``lane_change_probability``): the road has two lanes per direction (centres
  ``LANES`` = 1.75 and 5.0 m right of the centreline; road half width 8-8.8 m, so the inner sidewalk
  ends before the centre of the tightest bend); the camera moves from one to the other over 20-40 m
  of road with a cosine profile d(s) = a + (b - a) (1 - cos(pi u)) / 2.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Optional, Tuple

import numpy as np

from formats.params import Config, param

PATH_STREAM = 2  # third entropy word of the drive's random stream
MIN_TURN_RADIUS = 12.0  # metres, tightest radius of curvature of a turn
MAX_TURN_RADIUS = 25.0
LANES = (1.75, 5.0)  # lane centres (metres right of the centreline) of the camera's direction
LANE_DIVIDER = 3.375  # metres: the dashed line between the two lanes of a direction
ROAD_HALF_WIDTH = (8.0, 8.8)  # metres: 2 lanes (about 3.4 and 3.1 m wide), then a parking strip
MARGIN = 1.0  # metres of straight road kept before and after the turn inside the drive
LANE_CHANGE_LENGTH = (20.0, 40.0)


@dataclasses.dataclass(frozen=True)
class PathRanges(Config):
    """What a wild drive is drawn from (degrees, probabilities, metres per second); the ``wild_path:`` mapping
    of params.yaml."""

    turn_min_deg: float = param(
        20.0, help="heading change of the sequence's turn, uniform in [min, max] degrees, either side", above=0.0
    )
    turn_max_deg: float = param(90.0, help="upper end of the turn range (degrees)", maximum=170.0)
    stop_probability: float = param(
        0.5, help="chance to brake to a standstill, wait 0.4-1.2 s and pull away", minimum=0.0, maximum=1.0
    )
    lane_change_probability: float = param(0.5, help="chance of one lane change per drive", minimum=0.0, maximum=1.0)
    speed_min: float = param(4.0, help="lower end of the cruising speeds (m/s)", minimum=0.5)
    speed_max: float = param(14.0, help="upper end of the cruising speeds (m/s)", maximum=40.0)

    def check(self) -> Iterable[str]:
        if self.turn_min_deg > self.turn_max_deg:
            yield f"turn_max_deg: need turn_min_deg <= turn_max_deg, got {self.turn_min_deg}..{self.turn_max_deg}"
        if self.speed_min > self.speed_max:
            yield f"speed_max: need speed_min <= speed_max, got {self.speed_min}..{self.speed_max}"


@dataclasses.dataclass(frozen=True)
class DrivePlan:
    """A drawn drive. ``knot_t``/``knot_v``: the piecewise-linear speed (s, m/s); ``turn_start``,
    ``turn_length`` (metres from the start of the drive) and ``turn_angle`` (radians); the camera's lane
    offset goes from ``lane_from`` to ``lane_to`` over [``lane_start``, ``lane_start + lane_length``]."""

    knot_t: np.ndarray
    knot_v: np.ndarray
    turn_start: float
    turn_length: float
    turn_angle: float
    lane_from: float
    lane_to: float
    lane_start: float
    lane_length: float
    stops: bool
    half_width: float

    def distance(self, t) -> np.ndarray:
        """Metres travelled at times ``t`` (exact integral of the piecewise-linear speed)."""
        return integrate_speed(self.knot_t, self.knot_v, t)

    def speed(self, t) -> np.ndarray:
        return np.interp(np.asarray(t, np.float64), self.knot_t, self.knot_v)

    def lateral(self, s) -> np.ndarray:
        """Lane offset d(s) (metres right of the centreline) at drive distance ``s``."""
        u = np.clip((np.asarray(s, np.float64) - self.lane_start) / self.lane_length, 0.0, 1.0)
        return self.lane_from + (self.lane_to - self.lane_from) * 0.5 * (1.0 - np.cos(np.pi * u))

    def lateral_slope(self, s) -> np.ndarray:
        """d'(s) = dd/ds of :meth:`lateral` (dimensionless)."""
        s = np.asarray(s, np.float64)
        u = (s - self.lane_start) / self.lane_length
        inside = (u > 0.0) & (u < 1.0)
        return np.where(
            inside,
            (self.lane_to - self.lane_from) * 0.5 * np.pi / self.lane_length * np.sin(np.pi * np.clip(u, 0.0, 1.0)),
            0.0,
        )


def turn_heading(s, start: float, length: float, angle: float) -> np.ndarray:
    """Heading added by one turn at arc length ``s``: angle (u - sin(2 pi u) / (2 pi)), u clipped to [0, 1];
    its derivative is the curvature (2 angle / length) sin^2(pi u)."""
    u = np.clip((np.asarray(s, np.float64) - start) / length, 0.0, 1.0)
    return angle * (u - np.sin(2.0 * np.pi * u) / (2.0 * np.pi))


def turn_curvature(s, start: float, length: float, angle: float) -> np.ndarray:
    u = np.clip((np.asarray(s, np.float64) - start) / length, 0.0, 1.0)
    return 2.0 * angle / length * np.sin(np.pi * u) ** 2


def integrate_speed(knot_t: np.ndarray, knot_v: np.ndarray, t) -> np.ndarray:
    """Integral from 0 to t of the piecewise-linear v through (knot_t, knot_v); constant beyond the last knot."""
    knot_t, knot_v = np.asarray(knot_t, np.float64), np.asarray(knot_v, np.float64)
    t = np.asarray(t, np.float64)
    widths = np.diff(knot_t)
    cumulative = np.concatenate([[0.0], np.cumsum(0.5 * (knot_v[1:] + knot_v[:-1]) * widths)])
    index = np.clip(np.searchsorted(knot_t, t, side="right") - 1, 0, len(knot_t) - 2)
    tau = np.clip(t - knot_t[index], 0.0, None)
    slope = (knot_v[index + 1] - knot_v[index]) / widths[index]
    inside = t <= knot_t[-1]
    within = cumulative[index] + knot_v[index] * tau + 0.5 * slope * tau**2
    beyond = cumulative[-1] + knot_v[-1] * (t - knot_t[-1])
    return np.where(inside, within, beyond)


def _speed_knots(
    rng: np.random.Generator, duration: float, ranges: PathRanges
) -> Tuple[np.ndarray, np.ndarray, Optional[float]]:
    """Knots of v(t) covering [0, duration + 1] and the time the camera comes to rest (None: no stop)."""
    v0 = rng.uniform(max(ranges.speed_min, 0.5 * (ranges.speed_min + ranges.speed_max) - 3.0), ranges.speed_max)
    knots = [(0.0, v0)]
    rest = None
    if rng.random() < ranges.stop_probability:
        brake = max(rng.uniform(0.1, 0.45) * duration, 1e-3)  # knots strictly increasing, even for 1 frame
        stopped = brake + v0 / rng.uniform(2.5, 4.5)
        moving = stopped + rng.uniform(0.4, 1.2)
        v1 = rng.uniform(ranges.speed_min, ranges.speed_max)
        cruising = moving + v1 / rng.uniform(1.5, 3.0)
        knots += [(brake, v0), (stopped, 0.0), (moving, 0.0), (cruising, v1)]
        rest = stopped
    else:
        start = max(rng.uniform(0.05, 0.4) * duration, 1e-3)
        v1 = rng.uniform(ranges.speed_min, ranges.speed_max)
        reached = start + abs(v1 - v0) / rng.uniform(1.5, 3.5) + 1e-3
        second = max(reached + 1e-3, rng.uniform(0.5, 0.8) * duration)
        v2 = rng.uniform(ranges.speed_min, ranges.speed_max)
        knots += [(start, v0), (reached, v1), (second, v1), (second + abs(v2 - v1) / rng.uniform(1.5, 3.5) + 1e-3, v2)]
    end = max(duration, knots[-1][0]) + 1.0
    knots.append((end, knots[-1][1]))
    knot_t, knot_v = (np.array(values, np.float64) for values in zip(*knots))
    return knot_t, knot_v, rest


def plan_drive(seed: int, sequence: int, timestamps: np.ndarray, ranges: PathRanges) -> DrivePlan:
    """The drive of sequence ``sequence`` of the world drawn with ``seed`` (deterministic)."""
    rng = np.random.default_rng([int(seed), int(sequence), PATH_STREAM])
    timestamps = np.asarray(timestamps, np.float64)
    duration = float(timestamps[-1]) if timestamps.size else 0.0
    knot_t, knot_v, rest = _speed_knots(rng, duration, ranges)
    angle = math.radians(rng.uniform(ranges.turn_min_deg, ranges.turn_max_deg)) * (1.0 if rng.random() < 0.5 else -1.0)
    radius = rng.uniform(MIN_TURN_RADIUS, MAX_TURN_RADIUS)
    travelled = float(integrate_speed(knot_t, knot_v, duration))
    needed = 2.0 * abs(angle) * MIN_TURN_RADIUS + 2.0 * MARGIN
    if travelled < needed:  # too short a drive for the tightest allowed turn: drive faster, same profile
        factor = needed / max(travelled, 1e-9)
        knot_v = knot_v * factor
        travelled = float(integrate_speed(knot_t, knot_v, duration))
    length = min(2.0 * abs(angle) * radius, 0.7 * (travelled - 2.0 * MARGIN))  # some straight road if it fits
    length = max(length, 2.0 * abs(angle) * MIN_TURN_RADIUS)
    latest = max(MARGIN, travelled - MARGIN - length)
    if rest is not None and float(integrate_speed(knot_t, knot_v, rest)) <= latest:
        start = min(float(integrate_speed(knot_t, knot_v, rest)) + rng.uniform(0.0, 2.0), latest)
    else:
        start = rng.uniform(MARGIN, latest)
    lane_from = LANES[int(rng.integers(len(LANES)))]
    lane_to, lane_start, lane_length = lane_from, 0.0, 1.0
    lane_change_length = rng.uniform(*LANE_CHANGE_LENGTH)
    if rng.random() < ranges.lane_change_probability and travelled >= LANE_CHANGE_LENGTH[0] + 2.0 * MARGIN:
        lane_to = LANES[1] if lane_from == LANES[0] else LANES[0]
        lane_length = min(lane_change_length, travelled - 2.0 * MARGIN)
        lane_start = rng.uniform(MARGIN, travelled - MARGIN - lane_length)
    half_width = rng.uniform(*ROAD_HALF_WIDTH)
    return DrivePlan(
        knot_t,
        knot_v,
        float(start),
        float(length),
        float(angle),
        float(lane_from),
        float(lane_to),
        float(lane_start),
        float(lane_length),
        rest is not None,
        float(half_width),
    )
