"""An image's width and height from its header, without decoding it: a small PNG or JPEG
file can declare 16000x16000 pixels (768 MB once decoded), so every picture a client
sends is measured first and refused beyond :data:`MAX_PIXELS`."""

from __future__ import annotations

import struct

#: 25 megapixels: a 6000x4000 phone photo passes; 75 MB once decoded as BGR
MAX_PIXELS = 25_000_000

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG or JPEG, or None when the header cannot be read."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 4 <= len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker == 0xFF:
                i += 1
                continue
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            (length,) = struct.unpack(">H", data[i + 2 : i + 4])
            if marker in _SOF and i + 9 <= len(data):
                height, width = struct.unpack(">HH", data[i + 5 : i + 9])
                return width, height
            i += 2 + length
        return None
    return None


def too_many_pixels(data: bytes, limit: int = MAX_PIXELS) -> bool:
    """True for a PNG or JPEG declaring more than ``limit`` pixels (or a zero size); other
    formats are left to the decoder, which refuses what it cannot read."""
    size = dimensions(data)
    if size is None:
        return False
    width, height = size
    return width * height > limit or width == 0 or height == 0
