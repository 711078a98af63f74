"""Surface materials of the synthetic world and their mip-mapped texture atlas.

Every material is a 512 x 512 RGB tile (float32 in [0, 1]) that repeats over a given size in metres.
Photographic content comes from the images bundled with scikit-image (read from the installed package's
``data/`` folder directly, so nothing is ever downloaded); procedural noise, window grids and a sky are
drawn on top. All textures are deterministic (fixed seeds), independent of the scene seed.

All mip levels of all materials live in one atlas image, so texturing a whole frame is one ``cv2.remap``
per mip level pair (trilinear filtering). Tiles are stored with a wrapped border so that bilinear lookups
across a tile edge read the opposite edge (seamless repetition).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import NamedTuple, Tuple

import cv2
import numpy as np

TILE = 512  # texels per tile side at mip level 0
LEVELS = 8  # 512 ... 4 texels
PAD = 2  # wrapped border texels around every tile of every level

# material ids (also the column of the material in the atlas)
ASPHALT, SIDEWALK, GRASS, FACADE_BRICK, FACADE_PLASTER, FACADE_SHOP, WALL, CAR, PERSON, POLE, BACKDROP = range(11)
NAMES = (
    "asphalt",
    "sidewalk",
    "grass",
    "facade_brick",
    "facade_plaster",
    "facade_shop",
    "wall",
    "car",
    "person",
    "pole",
    "backdrop",
)
# size in metres covered by one tile (u along the surface's horizontal axis, v along its second axis)
TILE_METRES = np.array(
    [
        (3.0, 3.0),  # asphalt (u lateral, v along the road)
        (2.4, 2.4),  # sidewalk paving
        (2.5, 2.5),  # grass
        (4.0, 3.2),  # brick facade: one window bay x one storey
        (5.0, 3.5),  # plaster facade
        (6.0, 4.5),  # shop front with photographic posters
        (3.0, 3.0),  # concrete wall
        (2.2, 1.6),  # car: v spans the whole body height (bottom at 0)
        (0.6, 1.8),  # pedestrian: one picture per person
        (0.6, 2.5),  # pole
        (0.0, 160.0),  # backdrop: u set per scene so the cylinder closes seamlessly, v = height in metres
    ],
    dtype=np.float64,
)
BACKDROP_HEIGHT = TILE_METRES[BACKDROP, 1]


def skimage_data_dir() -> Path:
    """The ``data/`` folder of the installed scikit-image (bundled images; never fetched with pooch)."""
    import skimage

    return Path(skimage.__file__).resolve().parent / "data"


def load_bundled_image(name: str) -> np.ndarray:
    """A bundled scikit-image picture as float32 RGB in [0, 1] (grey pictures are replicated)."""
    path = skimage_data_dir() / name
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"{path}: bundled scikit-image picture missing (is scikit-image installed?)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def _square(image: np.ndarray, size: int = TILE) -> np.ndarray:
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def _mirror_tile(image: np.ndarray) -> np.ndarray:
    """Make a picture seamlessly tileable by mirroring it into a 2 x 2 block, then resize to TILE."""
    top = np.concatenate([image, image[:, ::-1]], axis=1)
    return _square(np.concatenate([top, top[::-1]], axis=0))


def _noise(rng: np.random.Generator, octaves: Tuple[int, ...], size: int = TILE) -> np.ndarray:
    """Tileable fractal value noise in [0, 1], (size, size) float32: sum of wrapped upsampled grids."""
    total = np.zeros((size, size), np.float32)
    weight = 0.0
    for cells in octaves:
        grid = rng.random((cells, cells)).astype(np.float32)
        wrapped = np.pad(grid, 1, mode="wrap")
        scale = size / cells
        # sample cell centres with bicubic interpolation over the wrapped grid
        coords = (np.arange(size, dtype=np.float32) + 0.5) / scale - 0.5 + 1.0
        map_x, map_y = np.meshgrid(coords, coords)
        total += cv2.remap(wrapped, map_x, map_y, cv2.INTER_CUBIC) / cells**0.5
        weight += 1.0 / cells**0.5
    total /= weight
    total -= total.min()
    return total / max(float(total.max()), 1e-6)


def _tint(gray: np.ndarray, colour) -> np.ndarray:
    return np.clip(gray[..., None] * np.asarray(colour, np.float32), 0.0, 1.0)


def _windows(base: np.ndarray, glass: np.ndarray, box: Tuple[float, float, float, float], frame_colour) -> np.ndarray:
    """Paint one window (fractions left, top, right, bottom of the tile) with a frame onto ``base``."""
    out = base.copy()
    left, top, right, bottom = (int(round(f * TILE)) for f in box)
    border = 10
    out[top - border : bottom + border, left - border : right + border] = np.asarray(frame_colour, np.float32)
    region = cv2.resize(glass, (right - left, bottom - top), interpolation=cv2.INTER_AREA)
    out[top:bottom, left:right] = region
    # a mullion and a transom
    mid_x, mid_y = (left + right) // 2, top + (bottom - top) // 3
    out[top:bottom, mid_x - 4 : mid_x + 4] = np.asarray(frame_colour, np.float32)
    out[mid_y - 4 : mid_y + 4, left:right] = np.asarray(frame_colour, np.float32)
    return out


def _sky_and_skyline(rng: np.random.Generator) -> np.ndarray:
    """Backdrop tile: rows are height above the ground from 0 (bottom row) to BACKDROP_HEIGHT (top row).

    A distant skyline (hills and tower blocks textured with photographs) under a sky with clouds.
    """
    rows = np.linspace(1.0, 0.0, TILE, dtype=np.float32)[:, None]  # 1 at the top
    sky = np.concatenate([0.55 + 0.15 * rows, 0.68 + 0.12 * rows, 0.85 + 0.1 * rows], axis=1)
    sky = np.repeat(sky[:, None, :], TILE, axis=1)
    clouds = _noise(rng, (4, 8, 16, 32, 64))
    cloud_alpha = np.clip((clouds - 0.45) * 2.2, 0.0, 0.85)[..., None]
    sky = sky * (1 - cloud_alpha) + np.float32(0.95) * cloud_alpha
    columns = np.arange(TILE)
    hills = 0.20 + 0.10 * _noise(rng, (4, 8, 16))[0]  # fraction of the tile height, tileable in u
    towers = np.zeros(TILE, np.float32)
    x = 0
    while x < TILE:
        width = int(rng.integers(12, 48))
        towers[x : x + width] = rng.uniform(0.1, 0.42) if rng.random() < 0.6 else 0.0
        x += width + int(rng.integers(0, 20))
    skyline = np.maximum(hills, towers)
    height_of_row = (TILE - 1 - np.arange(TILE)) / (TILE - 1)
    land = height_of_row[:, None] <= skyline[None, :]
    photo = _square(load_bundled_image("rocket.jpg")) * 0.5 + 0.5 * _square(load_bundled_image("hubble_deep_field.jpg"))
    city = np.clip(0.35 * _square(load_bundled_image("camera.png")) + 0.35 * photo, 0, 1)
    city = city * np.float32([0.85, 0.9, 1.0])
    hill_colour = _tint(0.3 + 0.3 * _noise(rng, (16, 64, 128)), (0.45, 0.55, 0.45))
    distant = np.where((towers[None, :] >= hills[None, :])[..., None] & land[..., None], city, hill_colour)
    del columns
    # haze: the distant land fades into the sky colour
    return np.where(land[..., None], 0.55 * distant + 0.45 * np.float32([0.7, 0.76, 0.85]), sky).astype(np.float32)


@functools.lru_cache(maxsize=1)
def material_tiles() -> np.ndarray:
    """(materials, TILE, TILE, 3) float32 RGB tiles, index = material id; deterministic."""
    rng = np.random.default_rng(20190401)
    gravel = _mirror_tile(load_bundled_image("gravel.png"))[..., 0]
    brick = _mirror_tile(load_bundled_image("brick.png"))[..., 0]
    grass = _mirror_tile(load_bundled_image("grass.png"))[..., 0]
    camera = _square(load_bundled_image("camera.png"))
    coffee = load_bundled_image("coffee.png")
    chelsea = load_bundled_image("chelsea.png")
    astronaut = load_bundled_image("astronaut.png")
    motorcycle = load_bundled_image("motorcycle_left.png")

    asphalt = _tint(0.25 + 0.35 * gravel + 0.08 * _noise(rng, (8, 32)), (0.95, 0.95, 1.0))
    paving = 0.45 + 0.4 * brick.T  # bricks laid the other way
    joints = np.ones((TILE, TILE), np.float32)
    joints[:, :6] = joints[:6, :] = 0.55
    sidewalk = _tint(paving * joints, (0.95, 0.9, 0.82))
    grass_tile = _tint(0.25 + 0.75 * grass, (0.45, 0.7, 0.3))
    glass = np.clip(0.15 + 0.45 * camera * np.float32([0.8, 0.9, 1.0]), 0, 1)
    facade_brick = _windows(
        _tint(0.35 + 0.65 * brick, (0.85, 0.55, 0.42)), glass, (0.3, 0.25, 0.7, 0.75), (0.9, 0.88, 0.82)
    )
    plaster = _tint(0.7 + 0.3 * _noise(rng, (8, 32, 128, 256)), (0.92, 0.87, 0.75))
    facade_plaster = _windows(plaster, glass[::-1], (0.2, 0.2, 0.8, 0.7), (0.3, 0.3, 0.32))
    shop = _tint(0.6 + 0.4 * _noise(rng, (16, 64, 256)), (0.75, 0.78, 0.8))
    shop[40:300, 30:240] = cv2.resize(coffee, (210, 260), interpolation=cv2.INTER_AREA)
    shop[40:300, 272:482] = cv2.resize(chelsea, (210, 260), interpolation=cv2.INTER_AREA)
    shop[340:500, 30:482] = 0.2 + 0.6 * cv2.resize(motorcycle, (452, 160), interpolation=cv2.INTER_AREA)
    wall = 0.45 + 0.45 * gravel + 0.1 * _noise(rng, (4, 16))
    wall[TILE // 2 - 3 : TILE // 2 + 3, :] = 0.35
    wall[:, :4] = 0.35
    wall_tile = _tint(wall, (0.82, 0.8, 0.76))
    car = _tint(0.75 + 0.25 * _noise(rng, (8, 64, 256)), (1.0, 1.0, 1.0))
    car[: int(0.38 * TILE)] = np.clip(0.1 + 0.5 * _square(coffee)[: int(0.38 * TILE)] * 0.6, 0, 1)  # glass band
    car[int(0.38 * TILE) : int(0.38 * TILE) + 8] = 0.15
    car[int(0.8 * TILE) :] *= 0.35  # dark bumper / sill
    person = _square(astronaut)
    pole = _tint(
        0.45 + 0.3 * _noise(rng, (4, 16, 128)) + 0.1 * np.sin(np.arange(TILE) / 8.0)[None, :], (0.75, 0.78, 0.8)
    )
    backdrop = _sky_and_skyline(rng)
    tiles = [asphalt, sidewalk, grass_tile, facade_brick, facade_plaster, shop, wall_tile, car, person, pole, backdrop]
    return np.clip(np.stack(tiles).astype(np.float32), 0.0, 1.0)


class Atlas(NamedTuple):
    """All mip levels of all materials in one image.

    ``image`` (H, W, 3) float32; ``origin_x[m]`` the atlas column of material m's tiles; ``origin_y[l]`` the
    atlas row of level l's tile (inside its PAD border); ``size[l]`` its side in texels.
    """

    image: np.ndarray
    origin_x: np.ndarray
    origin_y: np.ndarray
    size: np.ndarray


@functools.lru_cache(maxsize=1)
def atlas() -> Atlas:
    tiles = material_tiles()
    count = len(tiles)
    column = TILE + 2 * PAD
    sizes = np.array([TILE >> level for level in range(LEVELS)], np.int64)
    origin_y = np.cumsum(np.concatenate([[0], sizes[:-1] + 2 * PAD])) + PAD
    height = int(np.sum(sizes + 2 * PAD))
    image = np.zeros((height, column * count, 3), np.float32)
    for material, tile in enumerate(tiles):
        level_image = tile
        for level, size in enumerate(sizes):
            if level:
                level_image = cv2.resize(level_image, (int(size), int(size)), interpolation=cv2.INTER_AREA)
            padded = np.pad(level_image, ((PAD, PAD), (PAD, PAD), (0, 0)), mode="wrap")
            top = int(origin_y[level]) - PAD
            left = material * column
            image[top : top + size + 2 * PAD, left : left + size + 2 * PAD] = padded
    origin_x = np.arange(count, dtype=np.int64) * column + PAD
    return Atlas(image, origin_x.astype(np.float32), origin_y.astype(np.float32), sizes.astype(np.float32))
