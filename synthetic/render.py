"""Ray casting of a :class:`synthetic.scene.Scene` into an RGB image, metric depth and an instance mask.

Rays: pixel centre (i, j) is at (x, y) = (i, j); its ray in the camera frame is K^-1 [x, y, 1]^T, whose
z component is 1, so the ray parameter t of a hit IS its depth (z in the camera frame, metres). With
supersampling factor n, the colour of a pixel is the mean of n x n rays at x = i + (a + 0.5) / n - 0.5
(a = 0..n-1, same for y); depth and mask always come from the single ray through the pixel centre.

Intersections are analytic: the road plane y = 0, a vertical backdrop cylinder (so depth is finite
everywhere) and upright boxes (slab test in the box frame). Boxes are culled by the screen-space bounding
box of their near-plane-clipped corners. Textures come from the mip-mapped atlas of
:mod:`synthetic.textures` (trilinear), shading is per-face Lambert + ambient with distance haze.
"""

from __future__ import annotations

from typing import NamedTuple, Tuple

import cv2
import numpy as np

from synthetic import textures as tex
from synthetic.scene import Boxes, Scene

NEAR = 0.05  # metres; hits closer than this are ignored
SUN = np.array([-0.45, -0.75, 0.5]) / np.linalg.norm([-0.45, -0.75, 0.5])  # direction TO the sun (y down)
AMBIENT = 0.5
HAZE_COLOUR = np.float32([0.72, 0.78, 0.86])
HAZE_DISTANCE = 350.0  # metres; transmittance exp(-distance / HAZE_DISTANCE)
KIND_BACKDROP, KIND_GROUND, KIND_BOX = 0, 1, 2  # hit codes; box b is KIND_BOX + b
# the 12 edges of a box as pairs of corner indices (corner k has signs from the bits of k)
_EDGES = np.array([(a, a | bit) for a in range(8) for bit in (1, 2, 4) if not a & bit])
_CORNER_SIGNS = np.array([[1 if k & 1 else -1, 1 if k & 2 else -1, 1 if k & 4 else -1] for k in range(8)], float)


class Frame(NamedTuple):
    image: np.ndarray  # (H, W, 3) uint8 RGB
    depth: np.ndarray  # (H, W) float32 metres
    mask: np.ndarray  # (H, W) uint16 instance ids, 0 = static


def camera_rays(intrinsics: np.ndarray, width: int, height: int, supersampling: int = 1) -> np.ndarray:
    """(3, H*n, W*n) float32 camera-frame rays K^-1 [x, y, 1] of the n x n sub-pixel grid (z = 1)."""
    if supersampling < 1:
        raise ValueError(f"supersampling must be >= 1, got {supersampling}")
    n = supersampling
    xs = (np.arange(width * n) + 0.5) / n - 0.5
    ys = (np.arange(height * n) + 0.5) / n - 0.5
    x, y = np.meshgrid(xs, ys)
    pixels = np.stack([x, y, np.ones_like(x)])
    rays = np.einsum("ij,jhw->ihw", np.linalg.inv(intrinsics), pixels)
    return rays.astype(np.float32)


def intersect_box_slabs(origin_local: np.ndarray, dx, dy, dz, half: np.ndarray):
    """Slab test of rays origin + t (dx, dy, dz) against the box |x| <= hx, |y| <= hy, |z| <= hz.

    Returns (t_enter, t_exit, axis): entry and exit parameters and the axis (0, 1, 2) of the entry face;
    a ray hits when t_enter <= t_exit. Works on arrays of directions (any shape)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        entries, exits = [], []
        for axis, direction in enumerate((dx, dy, dz)):
            inverse = np.float32(1.0) / direction
            t1 = (np.float32(-half[axis] - origin_local[axis])) * inverse
            t2 = (np.float32(half[axis] - origin_local[axis])) * inverse
            entries.append(np.minimum(t1, t2))
            exits.append(np.maximum(t1, t2))
        t_enter = np.maximum(np.maximum(entries[0], entries[1]), entries[2])
        t_exit = np.minimum(np.minimum(exits[0], exits[1]), exits[2])
        axis = np.where(t_enter == entries[0], 0, np.where(t_enter == entries[1], 1, 2)).astype(np.int8)
    return t_enter, t_exit, axis


def box_corners(boxes: Boxes) -> np.ndarray:
    """(N, 8, 3) world corners of upright boxes."""
    c, s = np.cos(boxes.yaw), np.sin(boxes.yaw)
    local = _CORNER_SIGNS[None] * boxes.half[:, None, :]
    x = c[:, None] * local[..., 0] + s[:, None] * local[..., 2]
    z = -s[:, None] * local[..., 0] + c[:, None] * local[..., 2]
    return np.stack([x, local[..., 1], z], axis=-1) + boxes.center[:, None, :]


def screen_bounds(
    boxes: Boxes, T_camera_from_world: np.ndarray, intrinsics: np.ndarray, width: int, height: int
) -> np.ndarray:
    """(N, 4) integer pixel bounds (x0, y0, x1, y1), exclusive end, of each box's projection clipped to the
    image; empty (x1 <= x0) when the box lies behind the near plane or off screen. Conservative by 1 px."""
    if not len(boxes):
        return np.zeros((0, 4), np.int64)
    corners = box_corners(boxes) @ T_camera_from_world[:3, :3].T + T_camera_from_world[:3, 3]
    a, b = corners[:, _EDGES[:, 0]], corners[:, _EDGES[:, 1]]  # (N, 12, 3)
    za, zb = a[..., 2], b[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = (NEAR - za) / (zb - za)
        crossing = ((za - NEAR) * (zb - NEAR) < 0)[..., None]
        clipped = np.where(crossing, a + fraction[..., None] * (b - a), np.nan)
    points = np.concatenate([np.where(corners[..., 2:] >= NEAR, corners, np.nan), clipped], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        u = (
            intrinsics[0, 0] * points[..., 0] / points[..., 2]
            + intrinsics[0, 1] * points[..., 1] / points[..., 2]
            + intrinsics[0, 2]
        )
        v = intrinsics[1, 1] * points[..., 1] / points[..., 2] + intrinsics[1, 2]
    visible = np.any(np.isfinite(u), axis=1)
    bounds = np.zeros((len(boxes), 4), np.int64)
    if np.any(visible):
        with np.errstate(invalid="ignore"):
            lo_u, hi_u = np.nanmin(u[visible], axis=1), np.nanmax(u[visible], axis=1)
            lo_v, hi_v = np.nanmin(v[visible], axis=1), np.nanmax(v[visible], axis=1)
        bounds[visible] = np.stack(
            [
                np.clip(np.floor(lo_u) - 1, 0, width),
                np.clip(np.floor(lo_v) - 1, 0, height),
                np.clip(np.ceil(hi_u) + 2, 0, width),
                np.clip(np.ceil(hi_v) + 2, 0, height),
            ],
            axis=1,
        ).astype(np.int64)
    return bounds


class Hits(NamedTuple):
    t: np.ndarray  # (h, w) float32 ray parameter = depth
    kind: np.ndarray  # (h, w) int32: KIND_BACKDROP, KIND_GROUND, or KIND_BOX + box index
    axis: np.ndarray  # (h, w) int8 entry-face axis of box hits
    origin: np.ndarray  # (3,) camera centre in the world
    rays: Tuple[np.ndarray, np.ndarray, np.ndarray]  # world ray components (h, w) float32 each


def cast(scene: Scene, pose: np.ndarray, boxes: Boxes, rays_camera: np.ndarray, supersampling: int) -> Hits:
    """Nearest hit of every ray of the (3, h, w) grid ``rays_camera`` for camera-to-world ``pose``."""
    rotation = pose[:3, :3].astype(np.float32)
    origin = pose[:3, 3].astype(np.float64)
    dx = rotation[0, 0] * rays_camera[0] + rotation[0, 1] * rays_camera[1] + rotation[0, 2]
    dy = rotation[1, 0] * rays_camera[0] + rotation[1, 1] * rays_camera[1] + rotation[1, 2]
    dz = rotation[2, 0] * rays_camera[0] + rotation[2, 1] * rays_camera[1] + rotation[2, 2]

    # backdrop cylinder around (cx, cz): the camera is inside, take the positive root
    ox = np.float32(origin[0] - scene.backdrop_center[0])
    oz = np.float32(origin[2] - scene.backdrop_center[1])
    a = dx * dx + dz * dz
    b = ox * dx + oz * dz
    c = np.float32(ox * ox + oz * oz - scene.backdrop_radius**2)
    t = (-b + np.sqrt(b * b - a * c)) / a
    kind = np.zeros(t.shape, np.int32)
    # road plane y = 0 (the camera is above it: origin y < 0)
    with np.errstate(divide="ignore"):
        t_ground = np.float32(-origin[1]) / dy
    ground = (dy > 0) & (t_ground < t)
    t[ground] = t_ground[ground]
    kind[ground] = KIND_GROUND
    axis = np.zeros(t.shape, np.int8)

    n = supersampling
    T_camera_from_world = np.linalg.inv(pose)
    bounds = screen_bounds(boxes, T_camera_from_world, scene.intrinsics, scene.width, scene.height) * n
    for index in np.flatnonzero((bounds[:, 2] > bounds[:, 0]) & (bounds[:, 3] > bounds[:, 1])):
        x0, y0, x1, y1 = bounds[index]
        window = (slice(y0, y1), slice(x0, x1))
        cos_yaw, sin_yaw = np.cos(boxes.yaw[index]), np.sin(boxes.yaw[index])
        relative = origin - boxes.center[index]
        origin_local = (
            cos_yaw * relative[0] - sin_yaw * relative[2],
            relative[1],
            sin_yaw * relative[0] + cos_yaw * relative[2],
        )
        wx, wy, wz = dx[window], dy[window], dz[window]
        lx = np.float32(cos_yaw) * wx - np.float32(sin_yaw) * wz
        lz = np.float32(sin_yaw) * wx + np.float32(cos_yaw) * wz
        t_enter, t_exit, entry_axis = intersect_box_slabs(origin_local, lx, wy, lz, boxes.half[index])
        t_window = t[window]
        hit = (t_enter <= t_exit) & (t_enter > NEAR) & (t_enter < t_window)
        t_window[hit] = t_enter[hit]
        kind[window][hit] = KIND_BOX + index
        axis[window][hit] = entry_axis[hit]
    return Hits(t, kind, axis, origin, (dx, dy, dz))


def _remap_points(image: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Bilinear lookup of ``image`` at many points (cv2.remap needs 2-D maps of < 32767 columns)."""
    count = xs.size
    columns = 4096
    rows = max(1, -(-count // columns))
    padded = rows * columns
    map_x = np.zeros(padded, np.float32)
    map_y = np.zeros(padded, np.float32)
    map_x[:count], map_y[:count] = xs, ys
    out = cv2.remap(
        image,
        map_x.reshape(rows, columns),
        map_y.reshape(rows, columns),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(np.nan, np.nan, np.nan, np.nan),
    )
    return out.reshape(padded, -1)[:count]


class _Surface(NamedTuple):
    """Per sample (flattened): hit point (metres, world frame), ray direction, texture coordinates (metres),
    material, outward normal, tint and whether it is lit (the backdrop is not). Filled in place per kind."""

    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    dx: np.ndarray
    dy: np.ndarray
    dz: np.ndarray
    u: np.ndarray
    v: np.ndarray
    material: np.ndarray
    normal: np.ndarray  # (3, count)
    tint: np.ndarray  # (count, 3)
    lit: np.ndarray


def _surface(hits: Hits) -> _Surface:
    """Hit points of every ray, and blank surface attributes to fill."""
    flat_t = hits.t.reshape(-1)
    dx, dy, dz = (r.reshape(-1) for r in hits.rays)
    origin = hits.origin.astype(np.float32)  # float32 keeps millimetres at the scene's < 1 km scale
    count = flat_t.size
    return _Surface(
        origin[0] + flat_t * dx,
        origin[1] + flat_t * dy,
        origin[2] + flat_t * dz,
        dx,
        dy,
        dz,
        np.zeros(count, np.float32),
        np.zeros(count, np.float32),
        np.zeros(count, np.int64),
        np.zeros((3, count), np.float32),
        np.ones((count, 3), np.float32),
        np.ones(count, bool),
    )


def _shade_backdrop(scene: Scene, surface: _Surface, backdrop: np.ndarray) -> None:
    """The cylindrical backdrop: u along its circumference, v = height (folded into the sky when tall)."""
    px, py, pz, u, v = surface.px, surface.py, surface.pz, surface.u, surface.v
    angle = np.arctan2(pz[backdrop] - scene.backdrop_center[1], px[backdrop] - scene.backdrop_center[0])
    u[backdrop] = (angle + np.pi) * scene.backdrop_radius
    top = tex.BACKDROP_HEIGHT - 0.5
    if scene.tall_sky:  # above the top, mirror back into the sky band (above every skyline) instead of clipping
        band = 0.5 * tex.BACKDROP_HEIGHT
        excess = np.maximum(-py[backdrop] - top, 0.0)
        folded = np.abs(np.mod(excess + band, 2 * band) - band)  # 0..band, continuous
        v[backdrop] = np.where(excess > 0, top - folded, np.clip(-py[backdrop], 0.0, top))
    else:
        v[backdrop] = np.clip(-py[backdrop], 0.0, top)
    surface.material[backdrop] = tex.BACKDROP
    surface.lit[backdrop] = False


def _shade_ground(scene: Scene, surface: _Surface, ground: np.ndarray):
    """The ground in road coordinates (s along, d across the road): asphalt, sidewalk or grass. Returns
    (s, d, known) of the ground samples for the markings."""
    px, pz = surface.px, surface.pz
    raster, x0, z0, cell = scene.ground_raster
    road_sd = _remap_points(raster, (px[ground] - x0) / cell, (pz[ground] - z0) / cell)
    s_road, d_road = road_sd[:, 0], road_sd[:, 1]
    known = np.isfinite(s_road) & np.isfinite(d_road)
    offroad = np.abs(np.where(known, d_road, 1e3))
    w = scene.road.half_width
    ground_material = np.where(offroad < w, tex.ASPHALT, np.where(offroad < w + 3.0, tex.SIDEWALK, tex.GRASS))
    surface.u[ground] = np.where(known, d_road, px[ground])
    surface.v[ground] = np.where(known, s_road, pz[ground])
    surface.material[ground] = ground_material
    surface.normal[1, ground] = -1.0
    return s_road, d_road, known


def _shade_boxes(surface: _Surface, boxes: Boxes, hits: Hits, kind: np.ndarray) -> None:
    """Box faces: texture coordinates in the box's own frame, its material and tint, the entry face's normal."""
    boxed = np.flatnonzero(kind >= KIND_BOX)
    if not boxed.size:
        return
    px, py, pz, dx, dy, dz, normal = (
        surface.px,
        surface.py,
        surface.pz,
        surface.dx,
        surface.dy,
        surface.dz,
        surface.normal,
    )
    index = kind[boxed] - KIND_BOX
    cos_yaw, sin_yaw = np.cos(boxes.yaw[index]), np.sin(boxes.yaw[index])
    rx, ry, rz = (
        px[boxed] - boxes.center[index, 0],
        py[boxed] - boxes.center[index, 1],
        pz[boxed] - boxes.center[index, 2],
    )
    lx = cos_yaw * rx - sin_yaw * rz
    lz = sin_yaw * rx + cos_yaw * rz
    half = boxes.half[index]
    face = hits.axis.reshape(-1)[boxed]
    height_up = half[:, 1] - ry  # metres above the box bottom
    surface.u[boxed] = np.where(face == 0, lz + half[:, 2], lx + half[:, 0]) + boxes.uv_offset[index, 0]
    surface.v[boxed] = np.where(face == 1, lz + half[:, 2], height_up) + boxes.uv_offset[index, 1]
    surface.material[boxed] = boxes.material[index]
    surface.tint[boxed] = boxes.tint[index]
    # outward normal of the entry face: opposite to the local ray direction along that axis
    ldx = cos_yaw * dx[boxed] - sin_yaw * dz[boxed]
    ldz = sin_yaw * dx[boxed] + cos_yaw * dz[boxed]
    sign = -np.sign(np.where(face == 0, ldx, np.where(face == 1, dy[boxed], ldz)))
    normal[0, boxed] = np.where(face == 0, cos_yaw, np.where(face == 2, sin_yaw, 0.0)) * sign
    normal[1, boxed] = np.where(face == 1, 1.0, 0.0) * sign
    normal[2, boxed] = np.where(face == 0, -sin_yaw, np.where(face == 2, cos_yaw, 0.0)) * sign


def _sample_texture(scene: Scene, surface: _Surface, backdrop: np.ndarray, distance, cosine, supersampling: int):
    """Trilinear (mip-mapped) atlas colour of every sample, and the sample footprint on the surface (metres);
    the mip level follows that footprint."""
    atlas = tex.atlas()
    material, u, v = surface.material, surface.u, surface.v
    footprint = distance / (scene.intrinsics[0, 0] * supersampling) / np.sqrt(cosine)  # metres
    tile_u = tex.TILE_METRES[material, 0].astype(np.float32)
    tile_u[backdrop] = scene.backdrop_tile_u
    tile_v = tex.TILE_METRES[material, 1].astype(np.float32)
    texels_per_metre = tex.TILE / np.minimum(tile_u, tile_v)
    level = np.clip(np.log2(np.maximum(footprint * texels_per_metre, 1e-6)), 0.0, tex.LEVELS - 1.001)
    level_lo = np.floor(level).astype(np.int64)
    blend = (level - level_lo).astype(np.float32)[:, None]
    colour = None
    tu = u / tile_u * tex.TILE  # texel coordinates at level 0 (texel k spans [k, k + 1))
    # rows run downwards: height v above a surface's bottom edge maps to row TILE - v (wrapped), so the
    # tile's bottom row sits on the ground; the backdrop tile spans exactly its height (no wrap)
    tv = np.where(material == tex.BACKDROP, (tex.BACKDROP_HEIGHT - v) / tile_v, -v / tile_v) * tex.TILE
    for offset in (0, 1):
        lvl = np.minimum(level_lo + offset, tex.LEVELS - 1)
        size = atlas.size[lvl]
        scale = np.float32(1.0) / (2.0**lvl).astype(np.float32)
        ax = atlas.origin_x[material] + np.mod(tu * scale - 0.5, size)
        ay = atlas.origin_y[lvl] + np.mod(tv * scale - 0.5, size)
        sample = _remap_points(atlas.image, ax, ay)
        colour = sample * (1 - blend) if colour is None else colour + sample * blend
    return colour, footprint


def shade(scene: Scene, hits: Hits, boxes: Boxes, supersampling: int) -> np.ndarray:
    """(h, w, 3) float32 RGB in [0, 1] of the hits: surface attributes per kind (backdrop, ground, boxes),
    mip-mapped texture, road markings, sun and ambient light, haze with distance."""
    surface = _surface(hits)
    kind = hits.kind.reshape(-1)
    backdrop = kind == KIND_BACKDROP
    _shade_backdrop(scene, surface, backdrop)
    ground = np.flatnonzero(kind == KIND_GROUND)
    s_road, d_road, known = _shade_ground(scene, surface, ground)
    _shade_boxes(surface, boxes, hits, kind)

    dx, dy, dz, normal, lit = surface.dx, surface.dy, surface.dz, surface.normal, surface.lit
    ray_length = np.sqrt(dx * dx + dy * dy + dz * dz)
    distance = hits.t.reshape(-1) * ray_length
    cosine = np.abs(normal[0] * dx + normal[1] * dy + normal[2] * dz) / ray_length
    cosine = np.where(lit, np.maximum(cosine, 0.02), 1.0)
    colour, footprint = _sample_texture(scene, surface, backdrop, distance, cosine, supersampling)

    colour *= surface.tint
    colour = _road_markings(
        colour,
        ground,
        s_road,
        d_road,
        known,
        footprint[ground],
        cosine[ground],
        scene.road.half_width,
        scene.lane_lines,
    )
    sun = np.maximum(0.0, normal.T @ SUN.astype(np.float32))
    light = np.where(lit, AMBIENT + (1 - AMBIENT) * sun, 1.0)
    colour *= light[:, None].astype(np.float32)
    transmittance = np.where(lit, np.exp(-distance / HAZE_DISTANCE), 1.0).astype(np.float32)[:, None]
    colour = colour * transmittance + HAZE_COLOUR * (1 - transmittance)
    return np.clip(colour, 0.0, 1.0).reshape(hits.t.shape + (3,))


def _road_markings(colour, ground, s_road, d_road, known, footprint, cosine, half_width, lane_lines=()):
    """Anti-aliased lane markings (coverage from the sample footprint): a dashed centre line (3 m of
    every 9 m) and solid edge lines 0.3 m inside the kerb; a dark kerb strip at |d| = half width; dashed
    lane dividers (3 m of every 9 m) at |d| in ``lane_lines``."""
    across = np.maximum(footprint * np.sqrt(cosine), 1e-3)  # footprint across the line (metres)
    along = np.maximum(footprint / np.sqrt(np.maximum(cosine, 0.02)), 1e-3)
    d = np.where(known, d_road, 1e3)
    s = np.where(known, s_road, 0.0)

    def coverage(distance, half, blur):
        return np.clip((half - distance) / blur + 0.5, 0.0, 1.0)

    centre = coverage(np.abs(d), 0.06, across) * coverage(np.abs(np.mod(s, 9.0) - 1.5), 1.5, along)
    edge = coverage(np.abs(np.abs(d) - (half_width - 0.3)), 0.07, across)
    kerb = coverage(np.abs(np.abs(d) - half_width), 0.08, across)
    paint = np.maximum(centre, edge)
    for offset in lane_lines:
        dashes = coverage(np.abs(np.mod(s + 4.5, 9.0) - 1.5), 1.5, along)
        paint = np.maximum(paint, coverage(np.abs(np.abs(d) - offset), 0.06, across) * dashes)
    paint = paint[:, None].astype(np.float32)
    values = colour[ground] * (1 - paint) + np.float32(0.88) * paint
    values *= (1 - 0.5 * kerb)[:, None].astype(np.float32)
    colour[ground] = values
    return colour


def render_frame(
    scene: Scene, frame: int, supersampling: int = 2, include_movers: bool = True, rays_cache: dict | None = None
) -> Frame:
    """Render frame ``frame`` of ``scene``: RGB (mean of n x n samples), depth and instance mask at centres."""
    if not 0 <= frame < scene.num_frames:
        raise IndexError(f"frame {frame} outside 0..{scene.num_frames - 1}")
    cache = rays_cache if rays_cache is not None else {}

    def rays(n):
        key = (n, scene.width, scene.height, scene.intrinsics.tobytes())
        if key not in cache:
            cache[key] = camera_rays(scene.intrinsics, scene.width, scene.height, n)
        return cache[key]

    pose = scene.poses[frame]
    boxes = Boxes.concatenate([scene.static, scene.mover_boxes(frame)]) if include_movers else scene.static
    centre = cast(scene, pose, boxes, rays(1), 1)
    depth = centre.t.astype(np.float32)
    instance = np.concatenate([[0, 0], boxes.instance]).astype(np.uint16)
    mask = instance[centre.kind]
    if supersampling == 1:
        colour = shade(scene, centre, boxes, 1)
    else:
        samples = cast(scene, pose, boxes, rays(supersampling), supersampling)
        fine = shade(scene, samples, boxes, supersampling)
        colour = cv2.resize(fine, (scene.width, scene.height), interpolation=cv2.INTER_AREA)
    image = np.clip(np.round(colour * 255.0), 0, 255).astype(np.uint8)
    return Frame(image, depth, mask)
