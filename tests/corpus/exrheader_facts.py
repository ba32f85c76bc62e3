#!/usr/bin/env python3
"""Run OpenEXR's `exrheader` on files and print normalized facts, one JSON line each.

Usage: exrheader_facts.py FILE...   (env EXRHEADER overrides the program path)

A fact line:
  {"path": ..., "ok": true|false, "error": str|null, "version": 2, "flags": int,
   "workarounds": [...],
   "parts": [{"type": "scanlineimage", "name": str|null, "view": str|null,
              "attributes": {name: openexr type name},
              "channels": [{"name", "type": "half"|"float"|"uint",
                            "x_sampling", "y_sampling", "p_linear"}],
              "compression": "zip", "data_window": [x0, y0, x1, y1],
              "display_window": [x0, y0, x1, y1]}]}

The parse follows exrheader's printInfo() exactly: one line per attribute,
`NAME (type TYPE)`, then a type-specific value that may span a fixed number of
indented lines (chromaticities 4, keycode 7, m33f 3, m44f 4, timecode 4,
tiledesc 2 or 3), a variable number (chlist, stringvector) or, for strings, as
many lines as the string's own newlines. exrheader stops at the first failing
file, so it is run once per file.

Work-arounds for defects of Debian's exrheader (OpenEXR 3.1.5); each applied
one is named in "workarounds" so the comparison can say so:
- "idmanifest-size": 3.1.x reads an `idmanifest` value 4 bytes past its size
  (it reads a 64-bit length but only subtracts 4) and then misreads every later
  attribute. The judge reads a copy whose `idmanifest` type name is renamed to
  the same-length unknown type `idmanifesT`, which it skips by size; the fact
  reports the type as `idmanifest`.
- "compression-code": 3.1.x rejects compression codes it does not know
  (HTJ2K, ZSTD and other codes >= 10 added later, or garbage). The judge
  reads a copy with those codes set to 0; the fact reports the real code's
  name (from the installed OpenEXR bindings' enum, else `unknown(N)`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from header_layout import attribute_spans  # noqa: E402

EXRHEADER = os.environ.get("EXRHEADER", "exrheader")

COMPRESSION_DESCRIPTIONS = {
    "none": "none",
    "run-length encoding": "rle",
    "zip, individual scanlines": "zips",
    "zip, multi-scanline blocks": "zip",
    "piz": "piz",
    "pxr24": "pxr24",
    "b44": "b44",
    "b44a": "b44a",
    "dwa, small scanline blocks": "dwaa",
    "dwa, medium scanline blocks": "dwab",
}
CLASSIC_CODES = ["none", "rle", "zips", "zip", "piz", "pxr24", "b44", "b44a", "dwaa", "dwab"]
PIXEL_TYPES = {
    "16-bit floating-point": "half",
    "32-bit floating-point": "float",
    "32-bit unsigned integer": "uint",
}
FIXED_CONTINUATION = {"chromaticities": 4, "keycode": 7, "m33f": 3, "m44f": 4, "timecode": 4}
ATTR_RE = re.compile(r"^(?P<name>.*?) \(type (?P<type>[^)]*)\)(?P<rest>:.*)?$")
CHANNEL_RE = re.compile(
    r"^    (?P<name>.*), (?P<type>16-bit floating-point|32-bit floating-point|"
    r"32-bit unsigned integer|type -?\d+), sampling (?P<xs>-?\d+) (?P<ys>-?\d+)"
    r"(?P<plinear>, plinear)?$"
)
BOX_RE = re.compile(r"^: \((-?\d+) (-?\d+)\) - \((-?\d+) (-?\d+)\)$")
VERSION_RE = re.compile(r"^file format version: (\d+), flags 0x([0-9a-f]+)$")
PART_RE = re.compile(r"^ part (\d+)( \(incomplete\))?:$")


class ParseError(Exception):
    """exrheader printed something this parser does not understand."""


def compression_name(code: int) -> str:
    if code < len(CLASSIC_CODES):
        return CLASSIC_CODES[code]
    try:
        import OpenEXR

        name = OpenEXR.Compression(code).name
        if name.endswith("_COMPRESSION"):
            return name[: -len("_COMPRESSION")].lower()
    except Exception:  # bindings absent or code unknown to them
        pass
    return f"unknown({code})"


def parse_output(text: str, path: str) -> dict:
    """Facts from exrheader's stdout for one file."""
    lines = text.split("\n")
    i = 0

    def expect(cond: bool, what: str):
        if not cond:
            raise ParseError(f"line {i + 1}: expected {what}, got {lines[i] if i < len(lines) else 'EOF'!r}")

    expect(lines[0] == "", "blank line")
    expect(lines[1] in (f"file {path}:", f"file {path} (incomplete):"), "file line")
    expect(lines[2] == "", "blank line")
    i = 3
    m = VERSION_RE.match(lines[i])
    expect(m is not None, "version line")
    facts = {"version": int(m.group(1)), "flags": int(m.group(2), 16), "parts": []}
    i += 1
    part = None
    while i < len(lines):
        line = lines[i]
        if line == "":
            i += 1
            continue
        pm = PART_RE.match(line)
        if pm:
            expect(int(pm.group(1)) == len(facts["parts"]), "next part number")
            part = new_part()
            facts["parts"].append(part)
            i += 1
            continue
        am = ATTR_RE.match(line)
        expect(am is not None, "attribute line")
        if part is None:
            part = new_part()
            facts["parts"].append(part)
        name, type_name, rest = am.group("name"), am.group("type"), am.group("rest") or ""
        part["attributes"][name] = type_name
        i += 1
        if type_name == "chlist":
            part["channels"] = []
            while i < len(lines) and (cm := CHANNEL_RE.match(lines[i])):
                ptype = cm.group("type")
                part["channels"].append({
                    "name": cm.group("name"),
                    "type": PIXEL_TYPES.get(ptype, ptype),
                    "x_sampling": int(cm.group("xs")),
                    "y_sampling": int(cm.group("ys")),
                    "p_linear": cm.group("plinear") is not None,
                })
                i += 1
        elif type_name == "string":
            value = rest[len(': "'):] if rest.startswith(': "') else None
            expect(value is not None, 'string value `: "`')
            while not value.endswith('"'):
                expect(i < len(lines), "end of string value")
                value += "\n" + lines[i]
                i += 1
            value = value[:-1]
            if name == "type":
                part["type"] = value
            elif name in ("name", "view"):
                part[name] = value
        elif type_name == "stringvector":
            while i < len(lines) and lines[i].startswith('    "'):
                item = lines[i][5:]
                i += 1
                while not item.endswith('"'):
                    expect(i < len(lines), "end of stringvector item")
                    item += "\n" + lines[i]
                    i += 1
        elif type_name == "tiledesc":
            expect(i + 1 < len(lines), "tiledesc lines")
            i += 2 if lines[i] == "    single level" else 3
        elif type_name in FIXED_CONTINUATION:
            i += FIXED_CONTINUATION[type_name]
        elif type_name == "compression" and name == "compression":
            desc = rest[2:]
            part["compression"] = COMPRESSION_DESCRIPTIONS.get(desc, desc)
        elif type_name == "box2i" and name in ("dataWindow", "displayWindow"):
            bm = BOX_RE.match(rest)
            expect(bm is not None, "box2i value")
            key = "data_window" if name == "dataWindow" else "display_window"
            part[key] = [int(g) for g in bm.groups()]
    return facts


def new_part() -> dict:
    return {"type": None, "name": None, "view": None, "attributes": {}, "channels": [],
            "compression": None, "data_window": None, "display_window": None}


def run_exrheader(path: str) -> tuple[int, str, str]:
    proc = subprocess.run([EXRHEADER, path], capture_output=True)
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")


def run_on_copy(path: str, data: bytes) -> tuple[int, str, str]:
    """exrheader on a patched copy, its output relabelled with the original path."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "judged.exr")
        Path(copy).write_bytes(data)
        rc, out, err = run_exrheader(copy)
    return rc, out.replace(f"file {copy}", f"file {path}", 1), err


def judge(path: str) -> dict:
    """Facts for one file, applying the documented work-arounds."""
    data = Path(path).read_bytes()
    spans = attribute_spans(data) or []
    workarounds: list[str] = []
    patched = bytearray(data)
    if any(s.type_name == "idmanifest" for s in spans):
        for s in spans:
            if s.type_name == "idmanifest":
                patched[s.type_offset + 9] = ord("T")
        workarounds.append("idmanifest-size")
        rc, out, err = run_on_copy(path, bytes(patched))
    else:
        rc, out, err = run_exrheader(path)
    real_codes: dict[int, int] = {}
    if rc != 0 and "Unknown compression type" in err:
        for s in spans:
            if s.type_name == "compression" and s.size == 1 and data[s.value_offset] > 9:
                patched[s.value_offset] = 0
                if s.name == "compression":
                    real_codes[s.part] = data[s.value_offset]
        if real_codes:
            workarounds.append("compression-code")
            rc, out, err = run_on_copy(path, bytes(patched))
    facts = {"path": path, "ok": rc == 0, "error": None, "workarounds": workarounds}
    if rc != 0:
        facts["error"] = err.strip() or f"exrheader exit status {rc}"
        return facts
    try:
        facts.update(parse_output(out, path))
    except ParseError as e:
        facts.update(ok=False, error=f"cannot parse exrheader output: {e}", parse_error=True)
        return facts
    for part in facts["parts"]:
        for name, type_name in part["attributes"].items():
            if type_name == "idmanifesT" and "idmanifest-size" in workarounds:
                part["attributes"][name] = "idmanifest"
    for index, code in real_codes.items():
        if index < len(facts["parts"]):
            facts["parts"][index]["compression"] = compression_name(code)
    return facts


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for facts in pool.map(judge, argv):
            print(json.dumps(facts, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
