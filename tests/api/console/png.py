"""A minimal PNG reader (8-bit RGB/RGBA, non-interlaced: what Chromium's screenshots are) for render checks.

Pure Python but fast enough for a full-screen screenshot: the "up" filter, which Chromium's speed-optimised encoder
uses for every row, is undone for a whole row at once with SWAR arithmetic on big integers (per-byte addition
modulo 256 without carries between bytes); the other filters fall back to per-byte loops.
"""

from __future__ import annotations

import struct
import zlib
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Image:
    width: int
    height: int
    bpp: int
    rows: list[bytes]

    def colours(self, step: int = 1) -> Counter[bytes]:
        """Colour histogram of every ``step``-th pixel of every row (alpha ignored)."""
        counts: Counter[bytes] = Counter()
        stride = self.bpp * step
        for row in self.rows:
            counts.update(row[i:i + 3] for i in range(0, len(row), stride))
        return counts


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _add_bytes(a: bytes, b: bytes, low: int, high: int) -> bytes:
    """Byte-wise (a + b) mod 256 over whole rows: add the low 7 bits, then put the top bits back with XOR."""
    x, y = int.from_bytes(a, "big"), int.from_bytes(b, "big")
    return (((x & low) + (y & low)) ^ ((x ^ y) & high)).to_bytes(len(a), "big")


def decode(data: bytes) -> Image:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, header = 8, bytearray(), None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("no IHDR")
    width, height, depth, colour, _comp, _filter, interlace = header
    if depth != 8 or colour not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG (depth {depth}, colour type {colour}, interlace {interlace})")
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(bytes(idat))
    stride = width * bpp
    if len(raw) != height * (stride + 1):
        raise ValueError("truncated image data")
    low, high = int.from_bytes(b"\x7f" * stride, "big"), int.from_bytes(b"\x80" * stride, "big")
    prev = bytes(stride)
    rows: list[bytes] = []
    for y in range(height):
        start = y * (stride + 1)
        ftype, cur = raw[start], raw[start + 1:start + 1 + stride]
        if ftype == 0:
            row = cur
        elif ftype == 2:
            row = _add_bytes(cur, prev, low, high)
        else:
            line = bytearray(cur)
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                c = prev[i - bpp] if i >= bpp else 0
                if ftype == 1:
                    line[i] = (line[i] + a) & 0xFF
                elif ftype == 3:
                    line[i] = (line[i] + ((a + prev[i]) >> 1)) & 0xFF
                elif ftype == 4:
                    line[i] = (line[i] + _paeth(a, prev[i], c)) & 0xFF
                else:
                    raise ValueError(f"bad filter type {ftype}")
            row = bytes(line)
        rows.append(row)
        prev = row
    return Image(width, height, bpp, rows)
