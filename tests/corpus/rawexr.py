"""Byte-level OpenEXR writer for headers the official bindings cannot produce.

The OpenEXR bindings always write a complete, sorted, spec-conforming header.
Real files are not always like that: older writers omit the `type` attribute,
other writers emit attributes in any order, renderers invent custom attribute
types, and broken files exist. This module builds such files byte by byte so
the corpus covers them. Files written here are valid OpenEXR unless a case says
otherwise: uncompressed scanline parts, one line per chunk, zeroed pixels.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

MAGIC = b"\x76\x2f\x31\x01"
FLAG_TILED = 0x200
FLAG_LONG_NAMES = 0x400
FLAG_NON_IMAGE = 0x800
FLAG_MULTIPART = 0x1000

PIXEL_SIZE = {0: 4, 1: 2, 2: 4}  # uint, half, float


def attr(name: str, type_name: str, value: bytes) -> bytes:
    """One serialized attribute: name, type name, size, value."""
    return (
        name.encode() + b"\0" + type_name.encode() + b"\0" + struct.pack("<i", len(value)) + value
    )


def box2i(x0: int, y0: int, x1: int, y1: int) -> bytes:
    return struct.pack("<4i", x0, y0, x1, y1)


def chlist(channels: list[tuple[str, int, int, int, bool]]) -> bytes:
    """`chlist` value from (name, pixel type, x sampling, y sampling, pLinear)."""
    out = b""
    for name, ptype, xs, ys, plinear in channels:
        out += name.encode() + b"\0" + struct.pack("<iB3xii", ptype, int(plinear), xs, ys)
    return out + b"\0"


def string(s: str) -> bytes:
    return s.encode()


def stringvector(items: list[str]) -> bytes:
    return b"".join(struct.pack("<i", len(s.encode())) + s.encode() for s in items)


@dataclass
class ScanlinePart:
    """An uncompressed scanline part: its attributes in file order and its window."""

    width: int = 2
    height: int = 2
    x0: int = 0
    y0: int = 0
    channels: list[tuple[str, int, int, int, bool]] = field(
        default_factory=lambda: [("R", 1, 1, 1, False)]
    )
    extra: list[bytes] = field(default_factory=list)
    omit: set[str] = field(default_factory=set)
    compression: int = 0
    order: str = "sorted"  # "sorted" or "as_given" (required attributes first)

    def attributes(self) -> list[bytes]:
        x1, y1 = self.x0 + self.width - 1, self.y0 + self.height - 1
        required = {
            "channels": attr("channels", "chlist", chlist(self.channels)),
            "compression": attr("compression", "compression", bytes([self.compression])),
            "dataWindow": attr("dataWindow", "box2i", box2i(self.x0, self.y0, x1, y1)),
            "displayWindow": attr("displayWindow", "box2i", box2i(self.x0, self.y0, x1, y1)),
            "lineOrder": attr("lineOrder", "lineOrder", b"\0"),
            "pixelAspectRatio": attr("pixelAspectRatio", "float", struct.pack("<f", 1.0)),
            "screenWindowCenter": attr("screenWindowCenter", "v2f", struct.pack("<2f", 0, 0)),
            "screenWindowWidth": attr("screenWindowWidth", "float", struct.pack("<f", 1.0)),
        }
        attrs = [v for k, v in required.items() if k not in self.omit] + list(self.extra)
        if self.order == "sorted":
            attrs.sort(key=lambda a: a.split(b"\0", 1)[0])
        return attrs

    def chunks(self) -> list[bytes]:
        line = sum(
            PIXEL_SIZE.get(p, 4) * (self.width // xs)
            for _n, p, xs, ys, _l in self.channels
        )
        return [
            struct.pack("<ii", self.y0 + y, line) + bytes(line) for y in range(self.height)
        ]


def single_part(part: ScanlinePart, flags: int = 0, version: int = 2) -> bytes:
    """A complete single-part file."""
    header = MAGIC + struct.pack("<i", version | flags) + b"".join(part.attributes()) + b"\0"
    return _with_chunks(header, [part.chunks()], multipart=False)


def multi_part(parts: list[ScanlinePart], flags: int = 0) -> bytes:
    """A complete multi-part file; each part needs `name`, `type` and `chunkCount` in `extra`."""
    header = MAGIC + struct.pack("<i", 2 | FLAG_MULTIPART | flags)
    for p in parts:
        header += b"".join(p.attributes()) + b"\0"
    header += b"\0"
    return _with_chunks(header, [p.chunks() for p in parts], multipart=True)


def _with_chunks(header: bytes, parts_chunks: list[list[bytes]], multipart: bool) -> bytes:
    table_len = 8 * sum(len(c) for c in parts_chunks)
    pos = len(header) + table_len
    table = b""
    body = b""
    for index, chunks in enumerate(parts_chunks):
        for c in chunks:
            chunk = (struct.pack("<i", index) if multipart else b"") + c
            table += struct.pack("<Q", pos)
            pos += len(chunk)
            body += chunk
    return header + table + body
