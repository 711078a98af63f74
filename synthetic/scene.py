"""A procedural driving scene: a curved road, facades, parked cars, poles, moving cars and pedestrians.

World frame: x right, y DOWN, z forward at heading 0 (the camera axes of a level camera looking along +z);
the road surface is the plane y = 0, so "up" is -y and a camera 1.65 m above the road has y = -1.65.
Everything solid is an upright box (a yaw rotation about the y axis only). Heading psi rotates +z towards
+x: direction (sin psi, 0, cos psi); the right-hand side of a heading is (cos psi, 0, -sin psi).

The road centreline is parameterised by arc length s (metres) with an analytic heading psi(s); a point
is addressed by (s, d): d is the signed lateral offset, positive to the right. The camera drives in the
right lane (d = +1.75 m); oncoming traffic uses d = -1.75 m.

Poses are camera-to-world 4 x 4 matrices (``T_world_from_camera``). Everything is a deterministic function
of (seed, sequence index) and the camera/size settings.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, List, NamedTuple, Optional, Tuple

import numpy as np

from synthetic import paths as drives
from synthetic import textures as tex

LANE_OFFSET = 1.75
DRIVE_START = 20.0  # arc length of the camera at t = 0
SIDEWALK_WIDTH = 3.0


def rotation_y(angle) -> np.ndarray:
    """Rotation about the (downward) y axis: maps +z to (sin a, 0, cos a)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rotation_x(angle) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rotation_z(angle) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclasses.dataclass
class Boxes:
    """N upright boxes. ``center`` (N, 3) world metres, ``yaw`` (N,) radians (box z axis = heading),
    ``half`` (N, 3) half extents along the box's x (width), y (height), z (length) axes, ``material`` (N,)
    material ids, ``tint`` (N, 3) RGB multipliers, ``uv_offset`` (N, 2) texture offsets in metres,
    ``instance`` (N,) object id (0 for static structure)."""

    center: np.ndarray
    yaw: np.ndarray
    half: np.ndarray
    material: np.ndarray
    tint: np.ndarray
    uv_offset: np.ndarray
    instance: np.ndarray

    @staticmethod
    def empty() -> "Boxes":
        return Boxes(
            np.zeros((0, 3)),
            np.zeros(0),
            np.zeros((0, 3)),
            np.zeros(0, np.int64),
            np.zeros((0, 3)),
            np.zeros((0, 2)),
            np.zeros(0, np.int64),
        )

    def __len__(self) -> int:
        return len(self.yaw)

    @staticmethod
    def concatenate(parts: List["Boxes"]) -> "Boxes":
        parts = [p for p in parts if len(p)] or [Boxes.empty()]
        return Boxes(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(Boxes)))


@dataclasses.dataclass
class Road:
    """Centreline sampled every ``step`` metres from ``s0``; heading is analytic (sum of sines)."""

    s0: float
    step: float
    xz: np.ndarray  # (M, 2) centreline points
    psi0: float
    curv_amp: np.ndarray  # curvature kappa(s) = sum amp * sin(freq * s + phase)  [1/m]
    curv_freq: np.ndarray
    curv_phase: np.ndarray
    half_width: float  # road edge at |d| = half_width
    turns: Tuple[Tuple[float, float, float], ...] = ()  # (start s, length, heading change) of sharp turns

    def heading(self, s) -> np.ndarray:
        s = np.asarray(s, np.float64)[..., None]
        terms = (
            self.curv_amp / self.curv_freq * (np.cos(self.curv_phase) - np.cos(self.curv_freq * s + self.curv_phase))
        )
        heading = self.psi0 + terms.sum(-1)
        for start, length, angle in self.turns:
            heading = heading + drives.turn_heading(s[..., 0], start, length, angle)
        return heading

    def curvature(self, s) -> np.ndarray:
        """kappa(s) = d heading / ds [1/m] (positive: bending right)."""
        s = np.asarray(s, np.float64)
        kappa = np.sum(self.curv_amp * np.sin(self.curv_freq * s[..., None] + self.curv_phase), axis=-1)
        for start, length, angle in self.turns:
            kappa = kappa + drives.turn_curvature(s, start, length, angle)
        return kappa

    def max_curvature(self) -> float:
        """An upper bound of |kappa| [1/m]."""
        return float(np.sum(np.abs(self.curv_amp)) + sum(2.0 * abs(a) / length for _, length, a in self.turns))

    def point(self, s, d) -> np.ndarray:
        """World (x, z) of road coordinates (s, d): (..., 2)."""
        s = np.asarray(s, np.float64)
        position = (s - self.s0) / self.step
        x = np.interp(position, np.arange(len(self.xz)), self.xz[:, 0])
        z = np.interp(position, np.arange(len(self.xz)), self.xz[:, 1])
        psi = self.heading(s)
        d = np.asarray(d, np.float64)
        return np.stack([x + d * np.cos(psi), z - d * np.sin(psi)], axis=-1)

    def point_grid(self, s, d) -> np.ndarray:
        """``point(ss, dd)`` on the grid ``meshgrid(s, d, indexing="ij")`` of 1-D ``s`` and ``d`` (same values,
        the centreline and heading evaluated once per s): (len(s), len(d), 2)."""
        s = np.asarray(s, np.float64)
        position = (s - self.s0) / self.step
        x = np.interp(position, np.arange(len(self.xz)), self.xz[:, 0])[:, None]
        z = np.interp(position, np.arange(len(self.xz)), self.xz[:, 1])[:, None]
        psi = self.heading(s)[:, None]
        d = np.asarray(d, np.float64)[None, :]
        return np.stack([x + d * np.cos(psi), z - d * np.sin(psi)], axis=-1)


def make_road(
    rng: np.random.Generator,
    s_start: float,
    s_end: float,
    step: float = 0.5,
    turns: Tuple[Tuple[float, float, float], ...] = (),
    half_width: Optional[float] = None,
    gentle_scale: float = 1.0,
) -> Road:
    """A gently curving road between arc lengths s_start and s_end (curvature below ``gentle_scale``/120 per
    metre), plus the sharp ``turns`` (start s, length, heading change; see :func:`synthetic.paths.turn_heading`).
    ``half_width`` overrides the drawn 5-7 m (the draw is made either way)."""
    count = 3
    amp = rng.uniform(-1.0, 1.0, count) / 120.0 / count
    if gentle_scale != 1.0:
        amp = amp * gentle_scale
    freq = 2 * np.pi / rng.uniform(120.0, 450.0, count)
    phase = rng.uniform(0, 2 * np.pi, count)
    road = Road(
        s_start,
        step,
        np.zeros((0, 2)),
        float(rng.uniform(-np.pi, np.pi)),
        amp,
        freq,
        phase,
        float(rng.uniform(5.0, 7.0)),
        tuple(turns),
    )
    if half_width is not None:
        road.half_width = float(half_width)
    s = s_start + step * np.arange(int(np.ceil((s_end - s_start) / step)) + 2)
    psi = road.heading(s)
    direction = np.stack([np.sin(psi), np.cos(psi)], axis=-1)
    increments = 0.5 * (direction[1:] + direction[:-1]) * step
    road.xz = np.concatenate([np.zeros((1, 2)), np.cumsum(increments, axis=0)])
    return road


@dataclasses.dataclass
class Mover:
    """A movable object: boxes in its own frame (x right, y down, z forward; origin on the ground) moving
    along the road: s(t) = s0 + rate * t + sum amp * sin(freq * t + phase) (+ the camera's s when
    ``follow``), fixed lateral offset d, facing along the road (or against it when ``backwards``)."""

    instance: int
    kind: str
    local: Boxes
    s0: float
    rate: float
    amp: float
    freq: float
    phase: float
    lateral: float
    backwards: bool
    follow: bool


@dataclasses.dataclass
class Scene:
    width: int
    height: int
    intrinsics: np.ndarray  # 3x3 K in pixels, pixel centre (i, j) at (x, y) = (i, j)
    timestamps: np.ndarray  # (N,) seconds
    poses: np.ndarray  # (N, 4, 4) T_world_from_camera
    road: Road
    static: Boxes
    movers: List[Mover]
    camera_s: np.ndarray  # (N,) camera arc length
    backdrop_center: np.ndarray  # (2,) world (x, z)
    backdrop_radius: float
    backdrop_tile_u: float  # metres of backdrop per texture tile (divides the circumference)
    ground_raster: Tuple[np.ndarray, float, float, float]  # (H, W, 2) float32 (s, d), x0, z0, cell
    plan: Optional[drives.DrivePlan] = None  # the wild drive (None: the straight drive along the road)
    lane_lines: Tuple[float, ...] = ()  # |d| of dashed lane dividers besides the centre line
    tall_sky: bool = False  # the backdrop's clouds go on (mirrored) above its top, for wide-angle cameras

    @property
    def num_frames(self) -> int:
        return len(self.timestamps)

    def mover_boxes(self, frame: int) -> Boxes:
        """World boxes of all movers at frame ``frame`` (instance ids set)."""
        parts = []
        t = self.timestamps[frame]
        for mover in self.movers:
            s = mover.s0 + mover.rate * t + mover.amp * np.sin(mover.freq * t + mover.phase)
            if mover.follow:
                s += self.camera_s[frame]
            xz = self.road.point(s, mover.lateral)
            yaw = float(self.road.heading(s)) + (np.pi if mover.backwards else 0.0)
            rotation = rotation_y(yaw)
            local = mover.local
            center = local.center @ rotation.T + np.array([xz[0], 0.0, xz[1]])
            parts.append(
                dataclasses.replace(
                    local, center=center, yaw=local.yaw + yaw, instance=np.full(len(local), mover.instance)
                )
            )
        return Boxes.concatenate(parts)


# --- object models ----------------------------------------------------------------------------------------


def _box(center, half, material, tint, rng, yaw=0.0, instance=0) -> Boxes:
    return Boxes(
        np.array([center], float),
        np.array([yaw], float),
        np.array([half], float),
        np.array([material]),
        np.array([tint], float),
        np.array([[rng.uniform(0, 10), 0.0]]),
        np.array([instance]),
    )


def car_model(rng: np.random.Generator) -> Boxes:
    """Body (0.25 m above the road, 0.85 m tall) and cabin boxes, in the car's frame (z forward)."""
    length = rng.uniform(3.8, 4.8)
    width = rng.uniform(1.7, 1.9)
    tint = rng.uniform(0.25, 1.0, 3)
    body = _box((0, -(0.25 + 0.425), 0), (width / 2, 0.425, length / 2), tex.CAR, tint, rng)
    cabin_len = length * rng.uniform(0.45, 0.55)
    cabin = _box((0, -(1.1 + 0.28), -0.1 * length), (width / 2 - 0.08, 0.28, cabin_len / 2), tex.CAR, tint, rng)
    # the car tile spans 1.6 m: its lower part is paint and sill, its upper 38 % a glass band
    body.uv_offset[:, 1] = 0.0
    cabin.uv_offset[:, 1] = 1.0
    return Boxes.concatenate([body, cabin])


def person_model(rng: np.random.Generator) -> Boxes:
    height = rng.uniform(1.6, 1.9)
    return _box((0, -height / 2, 0), (0.28, height / 2, 0.18), tex.PERSON, rng.uniform(0.7, 1.0, 3), rng)


# --- scene construction -----------------------------------------------------------------------------------


def footprint_points(center_xz, yaw: float, half_x: float, half_z: float, spacing: float = 2.0) -> np.ndarray:
    """(K, 2) world (x, z) points along the outline of an upright box's footprint, at most ``spacing`` apart."""
    nx, nz = max(1, int(np.ceil(2 * half_x / spacing))), max(1, int(np.ceil(2 * half_z / spacing)))
    xs, zs = np.linspace(-half_x, half_x, nx + 1), np.linspace(-half_z, half_z, nz + 1)
    local = np.concatenate(
        [
            np.stack([xs, np.full_like(xs, -half_z)], 1),
            np.stack([xs, np.full_like(xs, half_z)], 1),
            np.stack([np.full_like(zs, -half_x), zs], 1),
            np.stack([np.full_like(zs, half_x), zs], 1),
        ]
    )
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([c * local[:, 0] + s * local[:, 1], -s * local[:, 0] + c * local[:, 1]], 1) + np.asarray(center_xz)


def clearance_test(road: Road, s_lo: float, s_hi: float, step: float = 0.25) -> Callable[[np.ndarray, float], bool]:
    """``clear(points, distance)``: True when every (x, z) point is at least ``distance`` metres from the road's
    centreline between s_lo and s_hi (sampled every ``step`` m). Used on sharply turning roads, where boxes
    placed beside one part of the road can stand on another part of it."""
    centre = road.point(np.arange(s_lo, s_hi + step, step), 0.0)

    def clear(points: np.ndarray, distance: float) -> bool:
        points = np.asarray(points, np.float64).reshape(-1, 2)
        squared = ((points[:, None, :] - centre[None, :, :]) ** 2).sum(-1)
        return bool(squared.min() >= distance**2)

    return clear


def _static_structure(
    rng: np.random.Generator,
    road: Road,
    s_lo: float,
    s_hi: float,
    clear: Optional[Callable[[np.ndarray, float], bool]] = None,
) -> Boxes:
    """Buildings, walls, poles and parked cars along both sides. With ``clear`` (see :func:`clearance_test`)
    a building or wall must stay off the road and sidewalk, a pole off the road, a parked car in its
    parking strip; boxes that would not are left out (the random draws are the same either way)."""
    parts: List[Boxes] = []
    w = road.half_width

    def place(s_mid, lateral, half, material, tint, yaw_extra=0.0):
        xz = road.point(s_mid, lateral)
        yaw = float(road.heading(s_mid)) + yaw_extra
        offset = rng.uniform(0, 20)
        if clear is not None:
            distance = w + 0.2 if material == tex.POLE else w + SIDEWALK_WIDTH
            if not clear(footprint_points(xz, yaw, half[0], half[2]), distance - 0.05):
                return
        parts.append(
            Boxes(
                np.array([[xz[0], -half[1], xz[1]]]),
                np.array([yaw]),
                np.array([half], float),
                np.array([material]),
                np.array([tint], float),
                np.array([[offset, 0.0]]),
                np.array([0]),
            )
        )

    for side in (-1.0, 1.0):
        s = s_lo
        while s < s_hi:  # buildings and walls
            length = rng.uniform(8.0, 26.0)
            roll = rng.random()
            if roll < 0.15:
                s += rng.uniform(3.0, 12.0)  # gap: the far ground and backdrop show through
                continue
            if roll < 0.27:
                inner = w + SIDEWALK_WIDTH + 0.2
                half = (0.15, rng.uniform(0.7, 1.3), length / 2)
                place(s + length / 2, side * (inner + 0.15), half, tex.WALL, rng.uniform(0.8, 1.1, 3))
            else:
                inner = w + SIDEWALK_WIDTH + rng.uniform(0.5, 6.0)
                depth = rng.uniform(8.0, 14.0)
                half = (depth / 2, rng.uniform(2.5, 11.0), length / 2)
                material = int(rng.choice([tex.FACADE_BRICK, tex.FACADE_PLASTER, tex.FACADE_SHOP]))
                place(s + length / 2, side * (inner + depth / 2), half, material, rng.uniform(0.7, 1.15, 3))
            s += length + rng.uniform(0.0, 1.5)
        s = s_lo + rng.uniform(0, 20)
        while s < s_hi:  # poles at the kerb
            place(s, side * (w + 0.4), (0.1, rng.uniform(2.2, 3.2), 0.1), tex.POLE, rng.uniform(0.8, 1.1, 3))
            s += rng.uniform(15.0, 35.0)
        s = s_lo + rng.uniform(0, 10)
        while s < s_hi:  # parked cars along the kerb, in rows with gaps
            if rng.random() < 0.45:
                model = car_model(rng)
                xz = road.point(s, side * (w - 1.0))
                yaw = float(road.heading(s)) + (0.0 if side > 0 else np.pi) + rng.uniform(-0.03, 0.03)
                if clear is not None and not clear(
                    footprint_points(xz, yaw, model.half[0, 0], model.half[0, 2]), w - 2.2
                ):
                    s += rng.uniform(5.5, 7.5)
                    continue
                rotation = rotation_y(yaw)
                parts.append(
                    dataclasses.replace(
                        model, center=model.center @ rotation.T + [xz[0], 0.0, xz[1]], yaw=model.yaw + yaw
                    )
                )
            s += rng.uniform(5.5, 7.5)
    return Boxes.concatenate(parts)


def _movers(rng: np.random.Generator, road: Road, duration: float, camera_s0: float, camera_s1: float) -> List[Mover]:
    movers: List[Mover] = []

    def add(kind, **kwargs):
        model = car_model(rng) if kind == "car" else person_model(rng)
        movers.append(Mover(instance=len(movers) + 1, kind=kind, local=model, **kwargs))

    if rng.random() < 0.8:  # a car ahead in the camera's lane, driving with it
        freq = rng.uniform(0.2, 0.6)
        add(
            "car",
            s0=rng.uniform(14.0, 30.0),
            rate=0.0,
            amp=rng.uniform(1.0, 4.0),
            freq=freq,
            phase=rng.uniform(0, 2 * np.pi),
            lateral=LANE_OFFSET,
            backwards=False,
            follow=True,
        )
    for _ in range(int(rng.integers(2, 4))):  # oncoming cars that meet the camera during the sequence
        speed = rng.uniform(7.0, 13.0)
        t_meet = rng.uniform(0.4, 1.3) * duration + 1.5
        s_meet = camera_s0 + (camera_s1 - camera_s0) * min(t_meet / max(duration, 1e-6), 1.0) + 3.0
        add(
            "car",
            s0=s_meet + speed * t_meet,
            rate=-speed,
            amp=0.0,
            freq=1.0,
            phase=0.0,
            lateral=-LANE_OFFSET,
            backwards=True,
            follow=False,
        )
    for _ in range(int(rng.integers(2, 5))):  # pedestrians on both sidewalks
        side = rng.choice([-1.0, 1.0])
        direction = rng.choice([-1.0, 1.0])
        add(
            "person",
            s0=camera_s0 + rng.uniform(10.0, 25.0 + (camera_s1 - camera_s0)),
            rate=direction * rng.uniform(1.0, 1.7),
            amp=0.0,
            freq=1.0,
            phase=0.0,
            lateral=side * (road.half_width + rng.uniform(1.0, 2.4)),
            backwards=direction < 0,
            follow=False,
        )
    return movers


def _ground_raster(road: Road, s_lo: float, s_hi: float, reach: float = 25.0, cell: float = 0.2, nearest: bool = False):
    """Lookup image from world (x, z) to road coordinates (s, d) of the cell centres (x0 + col * cell,
    z0 + row * cell), NaN where no road coordinate applies (beyond ``reach`` metres: plain grass).

    Cells are found by splatting samples 0.15 m apart (at |d| <= 25 m and curvature <= 1/120 per metre they
    stay under 0.2 m apart, so no cell is skipped), then refined to the exact coordinates of their centres.
    (A lattice 0.15 m apart does not cover every 0.2 m cell when it runs diagonally: about 0.5 % of the cells
    stay NaN and show as grass specks on the road of the original world, kept so that world stays the same.)
    ``nearest`` (the wild world's sharply turning roads): samples 0.1 m apart across (0.1 * sqrt(2) < 0.2, no
    holes) and 0.1 / (1 + reach * |curvature|) m along the road (the largest |curvature| within 1 m), so the
    outside of a bend has no holes either, and where the (s, d) grid folds over itself (inside a bend,
    beyond its centre) a cell takes the sample nearest to the centreline."""
    if nearest:
        fine = np.arange(s_lo, s_hi + 0.05, 0.05)
        kappa = np.abs(road.curvature(fine))
        window = kappa.copy()
        for shift in range(1, 21):  # running maximum over +-1 m
            window[shift:] = np.maximum(window[shift:], kappa[:-shift])
            window[:-shift] = np.maximum(window[:-shift], kappa[shift:])
        count = np.concatenate([[0.0], np.cumsum((1.0 + reach * window[:-1]) / 0.1 * 0.05)])
        s = np.interp(np.arange(0.0, count[-1]), count, fine)
        d = np.arange(-reach, reach, 0.1)
    else:
        s = np.arange(s_lo, s_hi, 0.15)
        d = np.arange(-reach, reach, 0.15)
    ss, dd = np.meshgrid(s, d, indexing="ij")
    xz = road.point_grid(s, d)
    x0, z0 = xz[..., 0].min() - cell, xz[..., 1].min() - cell
    ix = np.round((xz[..., 0] - x0) / cell).astype(np.int64)
    iz = np.round((xz[..., 1] - z0) / cell).astype(np.int64)
    raster = np.full((iz.max() + 2, ix.max() + 2, 2), np.nan, np.float32)
    if nearest:  # columns of the (s, d) grid from the largest |d| to the smallest: the nearest is written last
        for column in np.argsort(-np.abs(d), kind="stable"):
            raster[iz[:, column], ix[:, column], 0] = s
    else:
        raster[iz, ix, 0] = ss
    # refine to the exact road coordinates of each cell centre (Newton steps along the local tangent)
    rows, cols = np.nonzero(np.isfinite(raster[..., 0]))
    centre_x, centre_z = x0 + cols * cell, z0 + rows * cell
    s_cell = raster[rows, cols, 0].astype(np.float64)
    for _ in range(3):
        foot = road.point(s_cell, 0.0)
        psi = road.heading(s_cell)
        ex, ez = centre_x - foot[:, 0], centre_z - foot[:, 1]
        s_cell = s_cell + ex * np.sin(psi) + ez * np.cos(psi)
    foot = road.point(s_cell, 0.0)
    psi = road.heading(s_cell)
    d_cell = (centre_x - foot[:, 0]) * np.cos(psi) - (centre_z - foot[:, 1]) * np.sin(psi)
    raster[rows, cols, 0] = s_cell
    raster[rows, cols, 1] = d_cell
    return raster, float(x0), float(z0), cell


class Drive(NamedTuple):
    """The camera's drive of a scene: times (N,) s, poses (N, 4, 4) camera-to-world, arc lengths (N,) m."""

    timestamps: np.ndarray
    poses: np.ndarray
    camera_s: np.ndarray
    road: Road
    plan: Optional[drives.DrivePlan]
    s_range: Tuple[float, float]  # (s_lo, s_hi): the stretch of road that is built


def _drive(
    rng: np.random.Generator,
    seed: int,
    index: int,
    fps: float,
    num_frames: int,
    camera_height: float,
    path: Optional[drives.PathRanges],
) -> Drive:
    """The road and the camera's poses, drawn from ``rng`` (the scene's stream) and, for a wild path, the
    drive's own stream."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    timestamps = np.arange(num_frames, dtype=np.float64) / fps

    plan = None
    if path is None:
        # camera speed v(t) = v0 + sum A sin(w t + p), within about 5..14.5 m/s; s(t) is its exact integral
        v0 = rng.uniform(8.0, 11.5)
        amps = rng.uniform(0.0, 1.5, 2)
        freqs = rng.uniform(0.15, 0.6, 2)
        phases = rng.uniform(0, 2 * np.pi, 2)
        camera_s = (
            20.0
            + v0 * timestamps
            + np.sum(amps / freqs * (np.cos(phases) - np.cos(freqs * timestamps[:, None] + phases)), axis=1)
        )
        s_lo, s_hi = camera_s[0] - 20.0, camera_s[-1] + 230.0
        road = make_road(rng, s_lo - 5.0, s_hi + 5.0)
    else:
        plan = drives.plan_drive(seed, index, timestamps, path)
        camera_s = DRIVE_START + plan.distance(timestamps)
        s_lo, s_hi = camera_s[0] - 20.0, camera_s[-1] + 230.0
        turn = (DRIVE_START + plan.turn_start, plan.turn_length, plan.turn_angle)
        road = make_road(rng, s_lo - 5.0, s_hi + 5.0, turns=(turn,), half_width=plan.half_width, gentle_scale=0.5)

    # jitter: lateral wobble, bounce, yaw/pitch/roll (radians), smooth in time
    def wobble(amplitude):
        w = rng.uniform(0.3, 1.5)
        return amplitude * np.sin(w * timestamps + rng.uniform(0, 2 * np.pi))

    if plan is None:
        lateral = LANE_OFFSET + wobble(0.15)
        heights = camera_height + wobble(0.02)
        yaw = road.heading(camera_s) + wobble(0.01)
    else:
        # lane offset d(s) of the plan; the sway fades out when the camera slows down (none at a stop); the
        # camera looks along its direction of travel: heading + atan2(d'(s), 1 - kappa(s) d(s))
        lane = plan.lateral(camera_s - DRIVE_START)
        sway = np.clip(plan.speed(timestamps) / 5.0, 0.0, 1.0)
        lateral = lane + wobble(0.15) * sway
        heights = camera_height + wobble(0.02)
        travel = np.arctan2(plan.lateral_slope(camera_s - DRIVE_START), 1.0 - road.curvature(camera_s) * lane)
        yaw = road.heading(camera_s) + travel + wobble(0.01)
    pitch = wobble(0.008) + wobble(0.004)
    roll = wobble(0.006)
    xz = road.point(camera_s, lateral)
    poses = np.tile(np.eye(4), (num_frames, 1, 1))
    for i in range(num_frames):
        poses[i, :3, :3] = rotation_y(yaw[i]) @ rotation_x(pitch[i]) @ rotation_z(roll[i])
        poses[i, :3, 3] = (xz[i, 0], -heights[i], xz[i, 1])
    return Drive(timestamps, poses, camera_s, road, plan, (float(s_lo), float(s_hi)))


def camera_drive(
    seed: int,
    index: int,
    fps: float,
    num_frames: int,
    camera_height: float = 1.65,
    path: Optional[drives.PathRanges] = None,
) -> Drive:
    """The drive (poses, road) of scene ``index`` without building its scenery: the same poses as
    :func:`build_scene` gives (cheap; e.g. to score a constant-velocity guess on many drives)."""
    return _drive(np.random.default_rng([int(seed), int(index)]), seed, index, fps, num_frames, camera_height, path)


def build_scene(
    seed: int,
    index: int,
    width: int,
    height: int,
    intrinsics: np.ndarray,
    fps: float,
    num_frames: int,
    camera_height: float = 1.65,
    path: Optional[drives.PathRanges] = None,
    tall_sky: Optional[bool] = None,
) -> Scene:
    """Scene number ``index`` of the world drawn with ``seed`` (deterministic).

    ``path=None``: the camera follows the gently curving road at a smoothly varying speed (the original world,
    unchanged). With :class:`synthetic.paths.PathRanges`: the wild drive of :func:`synthetic.paths.plan_drive`
    (a sharp turn, stops or speed changes, a lane change) on a two-lanes-per-direction road.
    ``tall_sky`` (default: with a wild path): wide-angle cameras can look above the backdrop's 160 m top far
    away; the sky then continues, mirrored, instead of repeating the top row in streaks. Off, the original
    world is rendered as it always was."""
    rng = np.random.default_rng([int(seed), int(index)])
    timestamps, poses, camera_s, road, plan, (s_lo, s_hi) = _drive(
        rng, seed, index, fps, num_frames, camera_height, path
    )
    duration = float(timestamps[-1])

    clear = None if plan is None else clearance_test(road, s_lo - 5.0, s_hi + 5.0)
    static = _static_structure(rng, road, s_lo, s_hi, clear)
    movers = _movers(rng, road, duration, camera_s[0], camera_s[-1])

    centreline = road.point(np.linspace(s_lo, s_hi, 64), 0.0)
    center = 0.5 * (centreline.min(0) + centreline.max(0))
    radius = float(np.max(np.linalg.norm(centreline - center, axis=1))) + 80.0
    circumference = 2 * np.pi * radius
    tile_u = circumference / max(1, round(circumference / 400.0))
    return Scene(
        width,
        height,
        np.asarray(intrinsics, np.float64),
        timestamps,
        poses,
        road,
        static,
        movers,
        camera_s,
        center,
        radius,
        tile_u,
        _ground_raster(road, s_lo - 5.0, s_hi + 5.0, nearest=plan is not None),
        plan,
        () if plan is None else (drives.LANE_DIVIDER,),
        plan is not None if tall_sky is None else bool(tall_sky),
    )
