"""The test PNG reader against PNGs written by an independent encoder (Chromium's screenshots are checked with it)."""

from __future__ import annotations

import struct
import zlib

import pytest

from tests.api.console.png import decode


def _png(width: int, height: int, rows: list[bytes], filters: list[int], colour: int = 2) -> bytes:
    """Encode with the given per-row filter types, applying them as the PNG spec defines (independent of decode)."""
    bpp = 3 if colour == 2 else 4

    def paeth(a: int, b: int, c: int) -> int:
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        return a if pa <= pb and pa <= pc else b if pb <= pc else c

    out, prev = bytearray(), bytes(len(rows[0]))
    for row, f in zip(rows, filters, strict=True):
        enc = bytearray()
        for i, x in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][f]
            enc.append((x - pred) % 256)
        out += bytes([f]) + enc
        prev = row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(out))) + chunk(b"IEND", b"")


@pytest.mark.parametrize("colour", [2, 6])
def test_every_filter_type_round_trips(colour: int) -> None:
    bpp = 3 if colour == 2 else 4
    width, height = 7, 10
    rows = [bytes((x * 37 + y * 91 + k * 13 + x * y) % 256 for x in range(width) for k in range(bpp))
            for y in range(height)]
    image = decode(_png(width, height, rows, [y % 5 for y in range(height)], colour))
    assert image.rows == rows and (image.width, image.height, image.bpp) == (width, height, bpp)
    assert sum(image.colours().values()) == width * height


def test_rejects_non_png_and_truncation() -> None:
    with pytest.raises(ValueError):
        decode(b"GIF89a")
    good = _png(2, 2, [bytes(6), bytes(6)], [0, 0])
    with pytest.raises((ValueError, zlib.error)):
        decode(good.replace(zlib.compress(bytes(14)), zlib.compress(bytes(10))))
