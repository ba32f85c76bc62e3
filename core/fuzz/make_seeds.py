#!/usr/bin/env python3
"""Writes the committed seed files of the header reader's tests and fuzz corpus.

Every file is written by the official OpenEXR Python bindings (PyPI `openexr`), with tiny
data windows so the files stay small:

    ~/.cache/exrscan/venv/bin/python core/fuzz/make_seeds.py core/fuzz/corpus/header

and, with `--bench DIR`, the realistic 1920x1080 multi-AOV header used by the benchmark
(`worker/benches/header.rs`):

    ~/.cache/exrscan/venv/bin/python core/fuzz/make_seeds.py --bench worker/benches/data

The Rust unit tests (`core/src/header/tests.rs`) assert values from these files, so keep
the two in step when changing either.
"""

import fractions
import os
import sys

import numpy as np
import OpenEXR


def tiles(x, y, mode, rounding=OpenEXR.ROUND_DOWN):
    t = OpenEXR.TileDescription()
    t.xSize, t.ySize, t.mode, t.roundingMode = x, y, mode, rounding
    return t


def half(h=4, w=4):
    return np.zeros((h, w), dtype="float16")


def write(path, header, channels):
    with OpenEXR.File(header, channels) as f:
        f.write(path)


def every_attribute_type(out):
    preview = OpenEXR.PreviewImage(np.arange(2 * 3 * 4, dtype="uint8").reshape(2, 3, 4))
    header = {
        "compression": OpenEXR.PIZ_COMPRESSION,
        "type": OpenEXR.scanlineimage,
        "a_int": 7,
        "a_float": 1.5,
        "a_string": "hello",
        "a_stringvector": ["x", "yy"],
        "a_v2i": np.array([1, 2], dtype="int32"),
        "a_v2f": np.array([1.5, 2.5], dtype="float32"),
        "a_v2d": np.array([1.25, 2.25], dtype="float64"),
        "a_v3i": np.array([1, 2, 3], dtype="int32"),
        "a_v3f": np.array([1, 2, 3], dtype="float32"),
        "a_v3d": np.array([1, 2, 3], dtype="float64"),
        "a_box2i": (np.array([0, 1], dtype="int32"), np.array([3, 4], dtype="int32")),
        "a_box2f": (np.array([0, 1], dtype="float32"), np.array([3, 4], dtype="float32")),
        "a_m33f": np.eye(3, dtype="float32") * 2,
        "a_m33d": np.eye(3, dtype="float64") * 3,
        "a_m44f": np.eye(4, dtype="float32") * 4,
        "a_m44d": np.eye(4, dtype="float64") * 5,
        "a_floatvector": np.array([1, 2, 3, 4, 5], dtype="float32"),
        "a_rational": fractions.Fraction(24000, 1001),
        "a_keycode": OpenEXR.KeyCode(1, 2, 3, 4, 5, 4, 64),
        # hours, minutes, seconds, frame, drop, color, field/phase, bgf0, bgf1, bgf2, groups 1-8
        "a_timecode": OpenEXR.TimeCode(1, 2, 3, 4, 1, 0, 1, 0, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8),
        "a_chromaticities": (0.64, 0.33, 0.3, 0.6, 0.15, 0.06, 0.3127, 0.329),
        "a_envmap": OpenEXR.ENVMAP_CUBE,
        "a_lineorder": OpenEXR.DECREASING_Y,
        "a_compression": OpenEXR.DWAB_COMPRESSION,
        "a_tiledesc": tiles(32, 16, OpenEXR.MIPMAP_LEVELS, OpenEXR.ROUND_UP),
        "a_preview": preview,
        "a_bytes": OpenEXR.Bytes(b"abc"),
        "owner": "seed",
    }
    write(f"{out}/every_attribute_type.exr", header, {"R": half(), "G": half(), "B": half(), "A": half()})


def beauty_aovs(out, name="beauty_aovs.1001.exr", w=8, h=8):
    layers = ["diffuse", "specular", "emission", "sss"]
    channels = {c: half(h, w) for c in ["R", "G", "B", "A"]}
    for layer in layers:
        for c in "RGB":
            channels[f"{layer}.{c}"] = half(h, w)
    for c in "XYZ":
        channels[f"N.{c}"] = np.zeros((h, w), dtype="float32")
        channels[f"P.{c}"] = np.zeros((h, w), dtype="float32")
    channels["Z"] = np.zeros((h, w), dtype="float32")
    channels["crypto.id"] = np.zeros((h, w), dtype="uint32")
    header = {"compression": OpenEXR.DWAB_COMPRESSION, "type": OpenEXR.scanlineimage, "frame": 1001,
              "owner": "lighting", "software": "seed generator", "framesPerSecond": fractions.Fraction(24, 1)}
    write(f"{out}/{name}", header, channels)


def tiled(out):
    write(f"{out}/tiled_mipmap.exr",
          {"type": OpenEXR.tiledimage, "compression": OpenEXR.ZIP_COMPRESSION,
           "tiles": tiles(4, 4, OpenEXR.MIPMAP_LEVELS)},
          {"R": half(8, 8), "G": half(8, 8), "B": half(8, 8)})
    write(f"{out}/tiled_ripmap.exr",
          {"type": OpenEXR.tiledimage, "compression": OpenEXR.NO_COMPRESSION,
           "tiles": tiles(4, 2, OpenEXR.RIPMAP_LEVELS, OpenEXR.ROUND_UP)},
          {"Y": half(8, 8)})


def deep(out):
    z = np.empty((3, 4), dtype=object)
    for y in range(3):
        for x in range(4):
            z[y, x] = np.array([1.0, 2.0][: (x + y) % 3], dtype="float32")
    write(f"{out}/deep_scanline.exr", {"type": OpenEXR.deepscanline, "compression": OpenEXR.ZIPS_COMPRESSION}, {"Z": z})
    write(f"{out}/deep_tile.exr",
          {"type": OpenEXR.deeptile, "compression": OpenEXR.RLE_COMPRESSION, "tiles": tiles(2, 2, OpenEXR.ONE_LEVEL)},
          {"Z": z})


def multipart(out):
    parts = [
        OpenEXR.Part({"type": OpenEXR.scanlineimage, "compression": OpenEXR.ZIP_COMPRESSION, "view": "left"},
                     {"R": half(), "G": half(), "B": half()}, "beauty_left"),
        OpenEXR.Part({"type": OpenEXR.scanlineimage, "compression": OpenEXR.ZIP_COMPRESSION, "view": "right"},
                     {"R": half(), "G": half(), "B": half()}, "beauty_right"),
        OpenEXR.Part({"type": OpenEXR.tiledimage, "compression": OpenEXR.PIZ_COMPRESSION,
                      "tiles": tiles(2, 2, OpenEXR.ONE_LEVEL)},
                     {"depth.Z": np.zeros((4, 4), dtype="float32")}, "depth"),
    ]
    with OpenEXR.File(parts) as f:
        f.write(f"{out}/multipart_views.exr")


def multiview(out):
    channels = {c: half() for c in ["R", "G", "B", "right.R", "right.G", "right.B"]}
    write(f"{out}/multiview.exr",
          {"type": OpenEXR.scanlineimage, "compression": OpenEXR.ZIP_COMPRESSION, "multiView": ["left", "right"]},
          channels)


def luminance_chroma(out):
    channels = {
        "Y": OpenEXR.Channel(half(4, 4)),
        # The bindings take full-size arrays and subsample them.
        "RY": OpenEXR.Channel(half(4, 4), 2, 2, True),
        "BY": OpenEXR.Channel(half(4, 4), 2, 2, True),
    }
    write(f"{out}/luminance_chroma.exr", {"type": OpenEXR.scanlineimage, "compression": OpenEXR.PIZ_COMPRESSION},
          channels)


def long_names(out):
    name = "a_very_long_attribute_name_" + "x" * 40
    layer = "a.deeply.nested.layer_with_a_name_longer_than_thirty_one_bytes"
    write(f"{out}/long_names.exr",
          {"type": OpenEXR.scanlineimage, "compression": OpenEXR.NO_COMPRESSION, name: "long"},
          {f"{layer}.R": half(), "R": half()})


def htj2k(out):
    write(f"{out}/htj2k256.exr", {"type": OpenEXR.scanlineimage, "compression": OpenEXR.HTJ2K256_COMPRESSION},
          {"R": half(), "G": half(), "B": half()})


def bench(out):
    """A 1920x1080 beauty with 24 AOV channels and a typical renderer's attributes; DWAB keeps
    the zero pixels to a few KiB."""
    h, w = 1080, 1920
    channels = {c: half(h, w) for c in ["R", "G", "B", "A"]}
    for layer in ["diffuse", "specular", "emission", "sss", "transmission"]:
        for c in "RGB":
            channels[f"{layer}.{c}"] = half(h, w)
    for c in "XYZ":
        channels[f"N.{c}"] = half(h, w)
    channels["Z"] = np.zeros((h, w), dtype="float32")
    channels["albedo.R"] = half(h, w)
    header = {
        "compression": OpenEXR.DWAB_COMPRESSION,
        "type": OpenEXR.scanlineimage,
        "owner": "lighting",
        "comments": "seq010 shot0040 lighting v012",
        "capDate": "2024:05:01 12:00:00",
        "software": "renderer 5.2.1",
        "frame": 1001,
        "framesPerSecond": fractions.Fraction(24, 1),
        "chromaticities": (0.64, 0.33, 0.3, 0.6, 0.15, 0.06, 0.3127, 0.329),
        "whiteLuminance": 100.0,
        "worldToCamera": np.eye(4, dtype="float32"),
        "worldToNDC": np.eye(4, dtype="float32"),
        "timeCode": OpenEXR.TimeCode(1, 0, 41, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        "renderTime": 312.5,
        "samples": 256,
        "cameraName": "shotCam",
        "project": "exrscan",
        "multiView": ["main"],
    }
    write(f"{out}/beauty_1080p_aovs.1001.exr", header, channels)


def main():
    if sys.argv[1:2] == ["--bench"]:
        os.makedirs(sys.argv[2], exist_ok=True)
        bench(sys.argv[2])
        return
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "header")
    os.makedirs(out, exist_ok=True)
    every_attribute_type(out)
    beauty_aovs(out)
    tiled(out)
    deep(out)
    multipart(out)
    multiview(out)
    luminance_chroma(out)
    long_names(out)
    htj2k(out)


if __name__ == "__main__":
    main()
