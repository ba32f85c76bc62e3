#!/usr/bin/env python3
"""Write the small EXR samples committed in `samples/` for the README quick start.

Usage: make_samples.py [OUTDIR]   (default: <repo>/samples)

They look like one shot of a VFX render: a beauty sequence, a multi-part AOV
file, a deep file, a stereo file, a tiled mip-mapped environment and a
luminance/chroma plate (which OpenImageIO refuses, exrscan reads). Pixels are
flat colours so each file stays a few KB; the headers are what matters.
Deterministic: re-running rewrites identical bytes.
"""

from __future__ import annotations

import fractions
import sys
from pathlib import Path

import numpy as np
import OpenEXR

W, H = 1920, 1080


def flat(value: float, h: int = H, w: int = W, dtype: str = "float16") -> np.ndarray:
    return np.full((h, w), value, dtype=dtype)


def render_attributes(frame: int) -> dict:
    return {
        "owner": "lighting",
        "comments": "shot010 beauty, lighting v003",
        "capDate": "2024:05:01 10:20:30",
        "software": "exrscan make_samples.py",
        "renderingTransform": "ACES 1.0 Output - sRGB",
        "framesPerSecond": fractions.Fraction(24, 1),
        "frame": frame,
        "worldToCamera": np.identity(4, "float32"),
        "worldToNDC": np.identity(4, "float32"),
        "chromaticities": (0.7347, 0.2653, 0.0, 1.0, 0.0001, -0.077, 0.32168, 0.33767),
        "compression": OpenEXR.DWAB_COMPRESSION,
        "dwaCompressionLevel": 45.0,
    }


def write(out: Path, name: str, header_or_parts, channels=None) -> None:
    f = (OpenEXR.File(header_or_parts, 0) if channels is None
         else OpenEXR.File(header_or_parts, channels, 0))
    with f:
        f.write(str(out / name))


def make(out: Path) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.exr"):
        old.unlink()
    for frame in range(1001, 1005):
        write(out, f"shot010_beauty.{frame}.exr", render_attributes(frame),
              {"R": flat(0.18), "G": flat(0.18), "B": flat(0.2), "A": flat(1.0)})

    display = ((0, 0), (W - 1, H - 1))

    def aov(name, channels):
        return OpenEXR.Part({"displayWindow": display, "compression": OpenEXR.DWAB_COMPRESSION,
                             "renderPass": name, "frame": 1001}, channels, name)

    write(out, "shot010_aovs.1001.exr", [
        aov("beauty", {c: flat(0.18) for c in "RGBA"}),
        aov("diffuse", {f"diffuse.{c}": flat(0.1) for c in "RGB"}),
        aov("specular", {f"specular.{c}": flat(0.05) for c in "RGB"}),
        aov("depth", {"Z": flat(10.0, dtype="float32")}),
        aov("crypto", {"crypto00.R": flat(0.0, dtype="float32"),
                       "crypto00.G": flat(0.0, dtype="float32")}),
    ])

    write(out, "shot010_stereo.1001.exr",
          {"multiView": ["left", "right"], "compression": OpenEXR.DWAB_COMPRESSION},
          {**{c: flat(0.18) for c in "RGB"}, **{f"right.{c}": flat(0.2) for c in "RGB"}})

    dh, dw = 4, 8
    deep = {}
    for name, kind in (("R", "float16"), ("A", "float16"), ("Z", "float32")):
        plane = np.empty((dh, dw), dtype=object)
        for y in range(dh):
            for x in range(dw):
                n = (x + y) % 3
                plane[y, x] = None if n == 0 else np.linspace(1, 2, n).astype(kind)
        deep[name] = plane
    write(out, "shot010_deep.1001.exr",
          {"type": OpenEXR.deepscanline, "compression": OpenEXR.ZIPS_COMPRESSION,
           "dataWindow": ((956, 536), (956 + dw - 1, 536 + dh - 1)), "displayWindow": display,
           "deepImageState": OpenEXR.OpaqueAttribute(b"\x01", "deepImageState")}, deep)

    tiles = OpenEXR.TileDescription()
    tiles.xSize, tiles.ySize, tiles.mode = 64, 64, OpenEXR.MIPMAP_LEVELS
    write(out, "env_sky_latlong_mip.exr",
          {"type": OpenEXR.tiledimage, "tiles": tiles, "envmap": OpenEXR.ENVMAP_LATLONG,
           "compression": OpenEXR.ZIP_COMPRESSION},
          {c: flat(1.5, 256, 512) for c in "RGB"})

    write(out, "plate_yc.1001.exr", {"compression": OpenEXR.PIZ_COMPRESSION,
                                     "comments": "luminance/chroma plate"},
          {"Y": OpenEXR.Channel(flat(0.5, 64, 128), 1, 1),
           "RY": OpenEXR.Channel(flat(0.0, 64, 128), 2, 2),
           "BY": OpenEXR.Channel(flat(0.0, 64, 128), 2, 2)})
    return sorted(p.name for p in out.glob("*.exr"))


def main() -> int:
    default = Path(__file__).resolve().parents[2] / "samples"
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    for name in make(out):
        print(f"{out / name}  {(out / name).stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
