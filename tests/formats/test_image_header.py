"""Image headers are read before decoding: size, channels, and the documented pixel limit."""

import struct
import zlib

import cv2
import numpy as np
import pytest

from formats.image_header import MAX_IMAGE_PIXELS, check_image_header, read_image_header, read_image_size


def _png_header(width, height, colour_type=2):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def _encode(extension, image):
    ok, buffer = cv2.imencode(extension, image)
    assert ok
    return buffer.tobytes()


@pytest.mark.parametrize("extension", [".png", ".jpg", ".bmp"])
def test_size_and_channels_of_real_encodings(extension):
    colour = np.zeros((37, 53, 3), np.uint8)
    colour[:, :, 2] = 200
    grey = np.full((37, 53), 90, np.uint8)
    header = read_image_header(_encode(extension, colour))
    assert (header.width, header.height, header.channels, header.grey) == (53, 37, 3, False)
    assert read_image_size(_encode(extension, grey)) == (53, 37)
    assert read_image_header(_encode(extension, grey)).grey


def test_jpeg_size_after_app_segments():
    data = _encode(".jpg", np.zeros((8, 640, 3), np.uint8))
    exif = b"\xff\xe1" + struct.pack(">H", 2 + 100) + b"x" * 100  # an extra APP1 segment first
    assert read_image_size(data[:2] + exif + data[2:]) == (640, 8)


def test_bomb_header_rejected_before_decoding():
    bomb = _png_header(100000, 100000) + b"\x00" * 134  # 167 bytes claiming 10^10 pixels
    assert len(bomb) == 167
    assert read_image_size(bomb) == (100000, 100000)
    with pytest.raises(ValueError, match=r"frame.png: header claims 100000x100000 pixels, more than the limit"):
        check_image_header(bomb, "frame.png")


def test_limit_is_inclusive_and_documented():
    assert MAX_IMAGE_PIXELS == 8192 * 8192
    assert check_image_header(_png_header(8192, 8192)).width == 8192
    with pytest.raises(ValueError, match="more than the limit"):
        check_image_header(_png_header(8192, 8193))


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty file"),
        (b"GIF89a" + b"\x00" * 40, "not a PNG, JPEG or BMP"),
        (_png_header(10, 10)[:20], "truncated"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "truncated or has no frame header"),
        (_png_header(0, 10), "empty image"),
    ],
)
def test_bad_headers_are_value_errors(data, message):
    with pytest.raises(ValueError, match=message):
        check_image_header(data, "x")
