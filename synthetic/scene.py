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
from typing import List, Tuple

import numpy as np

from synthetic import textures as tex

LANE_OFFSET = 1.75
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
        return Boxes(np.zeros((0, 3)), np.zeros(0), np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros((0, 3)),
                     np.zeros((0, 2)), np.zeros(0, np.int64))

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
    xz: np.ndarray              # (M, 2) centreline points
    psi0: float
    curv_amp: np.ndarray        # curvature kappa(s) = sum amp * sin(freq * s + phase)  [1/m]
    curv_freq: np.ndarray
    curv_phase: np.ndarray
    half_width: float           # road edge at |d| = half_width

    def heading(self, s) -> np.ndarray:
        s = np.asarray(s, np.float64)[..., None]
        terms = self.curv_amp / self.curv_freq * (np.cos(self.curv_phase) - np.cos(self.curv_freq * s + self.curv_phase))
        return self.psi0 + terms.sum(-1)

    def point(self, s, d) -> np.ndarray:
        """World (x, z) of road coordinates (s, d): (..., 2)."""
        s = np.asarray(s, np.float64)
        position = (s - self.s0) / self.step
        x = np.interp(position, np.arange(len(self.xz)), self.xz[:, 0])
        z = np.interp(position, np.arange(len(self.xz)), self.xz[:, 1])
        psi = self.heading(s)
        d = np.asarray(d, np.float64)
        return np.stack([x + d * np.cos(psi), z - d * np.sin(psi)], axis=-1)


def make_road(rng: np.random.Generator, s_start: float, s_end: float, step: float = 0.5) -> Road:
    """A gently curving road between arc lengths s_start and s_end (curvature below 1/120 per metre)."""
    count = 3
    amp = rng.uniform(-1.0, 1.0, count) / 120.0 / count
    freq = 2 * np.pi / rng.uniform(120.0, 450.0, count)
    phase = rng.uniform(0, 2 * np.pi, count)
    road = Road(s_start, step, np.zeros((0, 2)), float(rng.uniform(-np.pi, np.pi)), amp, freq, phase,
                float(rng.uniform(5.0, 7.0)))
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
    intrinsics: np.ndarray      # 3x3 K in pixels, pixel centre (i, j) at (x, y) = (i, j)
    timestamps: np.ndarray      # (N,) seconds
    poses: np.ndarray           # (N, 4, 4) T_world_from_camera
    road: Road
    static: Boxes
    movers: List[Mover]
    camera_s: np.ndarray        # (N,) camera arc length
    backdrop_center: np.ndarray  # (2,) world (x, z)
    backdrop_radius: float
    backdrop_tile_u: float      # metres of backdrop per texture tile (divides the circumference)
    ground_raster: Tuple[np.ndarray, float, float, float]  # (H, W, 2) float32 (s, d), x0, z0, cell

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
            parts.append(dataclasses.replace(local, center=center, yaw=local.yaw + yaw,
                                             instance=np.full(len(local), mover.instance)))
        return Boxes.concatenate(parts)


# --- object models ----------------------------------------------------------------------------------------

def _box(center, half, material, tint, rng, yaw=0.0, instance=0) -> Boxes:
    return Boxes(np.array([center], float), np.array([yaw], float), np.array([half], float),
                 np.array([material]), np.array([tint], float), np.array([[rng.uniform(0, 10), 0.0]]),
                 np.array([instance]))


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

def _static_structure(rng: np.random.Generator, road: Road, s_lo: float, s_hi: float) -> Boxes:
    parts: List[Boxes] = []
    w = road.half_width

    def place(s_mid, lateral, half, material, tint, yaw_extra=0.0):
        xz = road.point(s_mid, lateral)
        yaw = float(road.heading(s_mid)) + yaw_extra
        parts.append(Boxes(np.array([[xz[0], -half[1], xz[1]]]), np.array([yaw]), np.array([half], float),
                           np.array([material]), np.array([tint], float),
                           np.array([[rng.uniform(0, 20), 0.0]]), np.array([0])))

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
                rotation = rotation_y(yaw)
                parts.append(dataclasses.replace(model, center=model.center @ rotation.T + [xz[0], 0.0, xz[1]],
                                                 yaw=model.yaw + yaw))
            s += rng.uniform(5.5, 7.5)
    return Boxes.concatenate(parts)


def _movers(rng: np.random.Generator, road: Road, duration: float, camera_s0: float, camera_s1: float) -> List[Mover]:
    movers: List[Mover] = []

    def add(kind, **kwargs):
        model = car_model(rng) if kind == "car" else person_model(rng)
        movers.append(Mover(instance=len(movers) + 1, kind=kind, local=model, **kwargs))

    if rng.random() < 0.8:  # a car ahead in the camera's lane, driving with it
        freq = rng.uniform(0.2, 0.6)
        add("car", s0=rng.uniform(14.0, 30.0), rate=0.0, amp=rng.uniform(1.0, 4.0), freq=freq,
            phase=rng.uniform(0, 2 * np.pi), lateral=LANE_OFFSET, backwards=False, follow=True)
    for _ in range(int(rng.integers(2, 4))):  # oncoming cars that meet the camera during the sequence
        speed = rng.uniform(7.0, 13.0)
        t_meet = rng.uniform(0.4, 1.3) * duration + 1.5
        s_meet = camera_s0 + (camera_s1 - camera_s0) * min(t_meet / max(duration, 1e-6), 1.0) + 3.0
        add("car", s0=s_meet + speed * t_meet, rate=-speed, amp=0.0, freq=1.0, phase=0.0,
            lateral=-LANE_OFFSET, backwards=True, follow=False)
    for _ in range(int(rng.integers(2, 5))):  # pedestrians on both sidewalks
        side = rng.choice([-1.0, 1.0])
        direction = rng.choice([-1.0, 1.0])
        add("person", s0=camera_s0 + rng.uniform(10.0, 25.0 + (camera_s1 - camera_s0)),
            rate=direction * rng.uniform(1.0, 1.7), amp=0.0, freq=1.0, phase=0.0,
            lateral=side * (road.half_width + rng.uniform(1.0, 2.4)), backwards=direction < 0, follow=False)
    return movers


def _ground_raster(road: Road, s_lo: float, s_hi: float, reach: float = 25.0, cell: float = 0.2):
    """Lookup image from world (x, z) to road coordinates (s, d) of the cell centres (x0 + col * cell,
    z0 + row * cell), NaN where no road coordinate applies (beyond ``reach`` metres: plain grass).

    Cells are found by splatting samples 0.15 m apart (at |d| <= 25 m and curvature <= 1/120 per metre they
    stay under 0.2 m apart, so no cell is skipped), then refined to the exact coordinates of their centres."""
    s = np.arange(s_lo, s_hi, 0.15)
    d = np.arange(-reach, reach, 0.15)
    ss, dd = np.meshgrid(s, d, indexing="ij")
    xz = road.point(ss, dd)
    x0, z0 = xz[..., 0].min() - cell, xz[..., 1].min() - cell
    ix = np.round((xz[..., 0] - x0) / cell).astype(np.int64)
    iz = np.round((xz[..., 1] - z0) / cell).astype(np.int64)
    raster = np.full((iz.max() + 2, ix.max() + 2, 2), np.nan, np.float32)
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


def build_scene(seed: int, index: int, width: int, height: int, intrinsics: np.ndarray, fps: float,
                num_frames: int, camera_height: float = 1.65) -> Scene:
    """Scene number ``index`` of the world drawn with ``seed`` (deterministic)."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    rng = np.random.default_rng([int(seed), int(index)])
    timestamps = np.arange(num_frames, dtype=np.float64) / fps
    duration = float(timestamps[-1])

    # camera speed v(t) = v0 + sum A sin(w t + p), within about 5..14.5 m/s; s(t) is its exact integral
    v0 = rng.uniform(8.0, 11.5)
    amps = rng.uniform(0.0, 1.5, 2)
    freqs = rng.uniform(0.15, 0.6, 2)
    phases = rng.uniform(0, 2 * np.pi, 2)
    camera_s = 20.0 + v0 * timestamps + np.sum(
        amps / freqs * (np.cos(phases) - np.cos(freqs * timestamps[:, None] + phases)), axis=1)
    s_lo, s_hi = camera_s[0] - 20.0, camera_s[-1] + 230.0
    road = make_road(rng, s_lo - 5.0, s_hi + 5.0)

    # jitter: lateral wobble, bounce, yaw/pitch/roll (radians), smooth in time
    def wobble(amplitude):
        w = rng.uniform(0.3, 1.5)
        return amplitude * np.sin(w * timestamps + rng.uniform(0, 2 * np.pi))

    lateral = LANE_OFFSET + wobble(0.15)
    heights = camera_height + wobble(0.02)
    yaw = road.heading(camera_s) + wobble(0.01)
    pitch = wobble(0.008) + wobble(0.004)
    roll = wobble(0.006)
    xz = road.point(camera_s, lateral)
    poses = np.tile(np.eye(4), (num_frames, 1, 1))
    for i in range(num_frames):
        poses[i, :3, :3] = rotation_y(yaw[i]) @ rotation_x(pitch[i]) @ rotation_z(roll[i])
        poses[i, :3, 3] = (xz[i, 0], -heights[i], xz[i, 1])

    static = _static_structure(rng, road, s_lo, s_hi)
    movers = _movers(rng, road, duration, camera_s[0], camera_s[-1])

    path = road.point(np.linspace(s_lo, s_hi, 64), 0.0)
    center = 0.5 * (path.min(0) + path.max(0))
    radius = float(np.max(np.linalg.norm(path - center, axis=1))) + 80.0
    circumference = 2 * np.pi * radius
    tile_u = circumference / max(1, round(circumference / 400.0))
    return Scene(width, height, np.asarray(intrinsics, np.float64), timestamps, poses, road, static, movers,
                 camera_s, center, radius, tile_u, _ground_raster(road, s_lo - 5.0, s_hi + 5.0))
