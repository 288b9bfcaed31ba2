"""A small PNG reader for screenshots: 8-bit RGB or RGBA, not interlaced."""

from __future__ import annotations

import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunks(data: bytes) -> dict[bytes, bytes]:
    chunks: dict[bytes, bytes] = {}
    offset = len(SIGNATURE)
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        chunks[kind] = chunks.get(kind, b"") + body
        offset += 12 + length
    return chunks


def _paeth(left: int, up: int, corner: int) -> int:
    estimate = left + up - corner
    distances = (abs(estimate - left), abs(estimate - up), abs(estimate - corner))
    return (left, up, corner)[distances.index(min(distances))]


def _unfilter(kind: int, row: bytearray, previous: bytes, step: int) -> None:
    for i in range(len(row)):
        left = row[i - step] if i >= step else 0
        up = previous[i]
        corner = previous[i - step] if i >= step else 0
        predictor = (0, left, up, (left + up) // 2, _paeth(left, up, corner))[kind]
        row[i] = (row[i] + predictor) & 0xFF


def pixels(data: bytes) -> list[tuple[int, ...]]:
    """Return every pixel of a PNG as a tuple of channel values."""
    assert data.startswith(SIGNATURE), "not a PNG"
    chunks = _chunks(data)
    width, height, depth, color, _, _, interlace = struct.unpack(
        ">IIBBBBB", chunks[b"IHDR"]
    )
    assert depth == 8, "only 8-bit PNGs are read"
    assert color in (2, 6), "only RGB and RGBA PNGs are read"
    assert not interlace, "interlaced PNGs are not read"
    step = 3 if color == 2 else 4
    raw = zlib.decompress(chunks[b"IDAT"])
    stride = width * step
    previous = bytes(stride)
    result: list[tuple[int, ...]] = []
    for number in range(height):
        start = number * (stride + 1)
        row = bytearray(raw[start + 1 : start + 1 + stride])
        _unfilter(raw[start], row, previous, step)
        result += [tuple(row[i : i + step]) for i in range(0, stride, step)]
        previous = bytes(row)
    return result
