"""Where each attribute of an OpenEXR header sits in the file's bytes.

Used only to work around known defects of the reference `exrheader` (see
`exrheader_facts.py`): to patch a copy of a file so that the judge can read
it. It parses nothing but the attribute framing (name, type name, size) and
gives up (returns None) on anything it does not understand.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

FLAG_MULTIPART = 0x1000
FLAG_NON_IMAGE = 0x800


@dataclass(frozen=True)
class AttributeSpan:
    part: int
    name: str
    type_name: str
    type_offset: int  # offset of the type name's first byte
    value_offset: int
    size: int


def attribute_spans(data: bytes) -> list[AttributeSpan] | None:
    """Every attribute of every part header, or None if the framing is broken."""
    if len(data) < 8 or data[:4] != b"\x76\x2f\x31\x01":
        return None
    (version,) = struct.unpack_from("<i", data, 4)
    multipart = bool(version & FLAG_MULTIPART)
    pos, part, spans = 8, 0, []
    while True:
        if pos >= len(data):
            return None
        if data[pos] == 0:  # end of one header
            pos += 1
            if not multipart:
                return spans
            part += 1
            if pos < len(data) and data[pos] == 0:
                return spans
            continue
        name_end = data.find(b"\0", pos)
        if name_end < 0:
            return None
        type_offset = name_end + 1
        type_end = data.find(b"\0", type_offset)
        if type_end < 0 or type_end + 5 > len(data):
            return None
        (size,) = struct.unpack_from("<i", data, type_end + 1)
        value_offset = type_end + 5
        if size < 0 or value_offset + size > len(data):
            return None
        spans.append(
            AttributeSpan(
                part,
                data[pos:name_end].decode("utf-8", "replace"),
                data[type_offset:type_end].decode("utf-8", "replace"),
                type_offset,
                value_offset,
                size,
            )
        )
        pos = value_offset + size
