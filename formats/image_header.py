"""Image size from the file header, read before decoding (PNG, JPEG, BMP).

A decoder allocates width x height x channels bytes from what the header claims: a 167-byte PNG that
claims 100000 x 100000 pixels makes OpenCV (and TensorFlow) try to allocate 30 GB and fail with an
uncaught error. Every decoder of wilddepth (preprocessing and training input) therefore calls
:func:`check_image_header` first and treats its ``ValueError`` as a bad input (a dead letter or a skipped
record), never a crash.

The limit :data:`MAX_IMAGE_PIXELS` is 8192 x 8192 = 67,108,864 pixels (192 MiB as RGB uint8): above 8K UHD
(7680 x 4320) video and far above KITTI (1242 x 375) or Cityscapes (2048 x 1024) frames.

Pure Python, no OpenCV, no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Tuple

MAX_IMAGE_PIXELS = 8192 * 8192
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers carry the size: C0..CF except DHT (C4), JPG (C8) and DAC (CC).
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_STANDALONE = {0x01} | set(range(0xD0, 0xD8))  # TEM, RST0..7: no length field
# PNG colour type -> channels (0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA).
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}


@dataclasses.dataclass(frozen=True)
class ImageHeader:
    """What an image file's header says: ``format`` ('png', 'jpeg', 'bmp'), size in pixels, and
    ``channels`` as stored (1 grey, 2 grey + alpha, 3 colour, 4 colour + alpha; a palette PNG counts as 3)."""

    format: str
    width: int
    height: int
    channels: int

    @property
    def grey(self) -> bool:
        """True when the file stores grey levels only (1 channel, or grey + alpha)."""
        return self.channels in (1, 2)


def _png(data: bytes) -> ImageHeader:
    # signature (8) | IHDR length (4) | b"IHDR" (4) | width (4) | height (4) | bit depth (1) | colour type (1)
    if len(data) < 26 or data[12:16] != b"IHDR":
        raise ValueError("PNG header is truncated or has no IHDR chunk")
    width, height = struct.unpack(">II", data[16:24])
    colour_type = data[25]
    if colour_type not in _PNG_CHANNELS:
        raise ValueError(f"PNG header has an invalid colour type {colour_type}")
    return ImageHeader("png", int(width), int(height), _PNG_CHANNELS[colour_type])


def _jpeg(data: bytes) -> ImageHeader:
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            raise ValueError(f"JPEG header is malformed at byte {position}")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _JPEG_STANDALONE:
            position += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or start of scan before any frame header
            break
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if length < 2:
            raise ValueError(f"JPEG segment at byte {position} has an invalid length {length}")
        if marker in _JPEG_SOF:
            # length (2) | precision (1) | height (2) | width (2) | components (1)
            if position + 10 > len(data):
                break
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return ImageHeader("jpeg", int(width), int(height), int(data[position + 9]))
        position += 2 + length
    raise ValueError("JPEG header is truncated or has no frame header (SOF)")


def _bmp(data: bytes) -> ImageHeader:
    # "BM" | file size (4) | reserved (4) | pixel offset (4) | DIB size (4) | width (4) | height (4)
    # | planes (2) | bpp (2)
    if len(data) < 30:
        raise ValueError("BMP header is truncated")
    (dib_size,) = struct.unpack("<I", data[14:18])
    if dib_size == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        width, height, _, bits = struct.unpack("<HHHH", data[18:26])
    else:
        width, height, _, bits = struct.unpack("<iiHH", data[18:30])
    return ImageHeader("bmp", abs(int(width)), abs(int(height)), 1 if bits <= 8 else (4 if bits == 32 else 3))


def read_image_header(data: bytes) -> ImageHeader:
    """Parse the header of PNG, JPEG or BMP ``data`` (the whole file or at least its first few hundred
    bytes). Raises ValueError for anything else or a header that is cut short."""
    data = bytes(data[:65536]) if not isinstance(data, bytes) else data
    if data.startswith(PNG_SIGNATURE):
        return _png(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg(data)
    if data.startswith(b"BM"):
        return _bmp(data)
    raise ValueError("not a PNG, JPEG or BMP image" if data else "empty file")


def read_image_size(data: bytes) -> Tuple[int, int]:
    """(width, height) in pixels claimed by the header of PNG, JPEG or BMP ``data``; ValueError otherwise."""
    header = read_image_header(data)
    return header.width, header.height


def check_image_header(data: bytes, what: str = "image", max_pixels: int = MAX_IMAGE_PIXELS) -> ImageHeader:
    """Validate ``data``'s header before decoding: a known format, a non-zero size and at most
    ``max_pixels`` pixels. Returns the header; raises ValueError naming ``what`` (e.g. the file path)."""
    try:
        header = read_image_header(data)
    except ValueError as error:
        raise ValueError(f"{what}: {error}") from None
    if header.width <= 0 or header.height <= 0:
        raise ValueError(f"{what}: header claims an empty image ({header.width}x{header.height})")
    if header.width * header.height > max_pixels:
        raise ValueError(
            f"{what}: header claims {header.width}x{header.height} pixels, more than the limit of "
            f"{max_pixels} (formats.image_header.MAX_IMAGE_PIXELS)"
        )
    return header
