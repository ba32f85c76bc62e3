#!/usr/bin/env python3
"""Benchmark `exrscan inspect --json` against OpenImageIO's Python binding, in one run.

Usage: bench_inspect.py --exrscan BIN [--corpus DIR] [--copies N] [--rounds R] [--json FILE]

Two file sets, each read by both tools:
  corpus   every file of the generated corpus (generate.py, written to a temp
           dir unless --corpus is given): all header shapes, tiny files;
  beauty   N copies (default 5000) of one realistic render header: a 1920×1080
           beauty with 12 AOV layers (48 channels), the standard render
           attributes and a 24-frame sequence's worth of names.

exrscan: one process per set, `BIN inspect --json FILE…` (batched by 2,000
paths), stdout (JSON lines) redirected to a file, so producing and writing the
JSON output is included in the time; the lines are counted and checked after
the clock stops.
OpenImageIO: in this process, per file `ImageInput.open(path)`, then for every
subimage (part) the spec with all its attributes read into Python values
(name, type, value), the channel names and formats, then `close()`; OIIO's
own threads are set to 1. A file OIIO cannot open counts as handled (its
error text is read) and is listed (subsampled luminance/chroma files are).

Each set is read once to warm the page cache, then timed R rounds (default 3)
alternating the tools; the median round is reported as files/s on wall time
and on CPU time (user+sys of this process or of the exrscan child), and as the
ratio exrscan/OIIO. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import OpenEXR
import OpenImageIO as oiio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import generate  # noqa: E402

BATCH = 2000
AOVS = ["diffuse", "specular", "coat", "sss", "transmission", "emission", "albedo",
        "volume", "light.key", "light.fill", "light.rim", "light.env"]


def beauty_file(path: Path) -> None:
    """A realistic render header: 1920×1080, 48 half channels, render attributes."""
    h, w = 1080, 1920
    flat = np.zeros((h, w), "float16")
    channels = {c: flat for c in "RGBA"}
    for layer in AOVS[:11]:
        channels.update({f"{layer}.{c}": flat for c in "RGBA"})
    header = {**generate.standard_attributes(1001), "compression": OpenEXR.DWAB_COMPRESSION,
              "chromaticities": (0.7347, 0.2653, 0.0, 1.0, 0.0001, -0.077, 0.32168, 0.33767),
              "renderPasses": AOVS, "cameraName": "shotcam_v012", "renderTime": 1843.5,
              "samples": 1024, "resolution": (w, h)}
    with OpenEXR.File(header, channels, 0) as f:
        f.write(str(path))


def beauty_set(root: Path, copies: int) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    src = root / "source.exr"
    beauty_file(src)
    data = src.read_bytes()
    files = []
    for i in range(copies):
        shot, frame = divmod(i, 24)
        p = root / f"sh{shot:04d}" / f"beauty.{1001 + frame}.exr"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        files.append(str(p))
    src.unlink()
    return files


def child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_exrscan(binary: str, files: list[str]) -> tuple[float, float, int]:
    """Wall and CPU seconds, and the number of records with ok:false.

    exrscan's JSON lines go to a file (page cache), as a user would redirect them; they are
    read back and checked after the clock stops, so this script's own parsing of the
    output is not counted as exrscan's time."""
    outputs = []
    t0, c0 = time.perf_counter(), child_cpu()
    for start in range(0, len(files), BATCH):
        batch = files[start : start + BATCH]
        out = tempfile.TemporaryFile()
        proc = subprocess.run([binary, "inspect", "--json", *batch], stdout=out, stderr=subprocess.PIPE)
        if proc.returncode != 0:
            raise SystemExit(f"exrscan inspect failed ({proc.returncode}): {proc.stderr[-500:]!r}")
        outputs.append((out, len(batch)))
    wall, cpu = time.perf_counter() - t0, child_cpu() - c0
    failed = 0
    for out, expected in outputs:
        out.seek(0)
        lines = out.read().splitlines()
        out.close()
        if len(lines) != expected:
            raise SystemExit(f"exrscan printed {len(lines)} records for {expected} files")
        failed += sum(1 for line in lines if b'"ok":false' in line)
    return wall, cpu, failed


def oiio_read(path: str) -> dict:
    """Everything OIIO's spec says about every part of one file."""
    inp = oiio.ImageInput.open(path)
    if inp is None:
        return {"path": path, "error": oiio.geterror()}
    parts = []
    sub = 0
    while inp.seek_subimage(sub, 0):
        spec = inp.spec()
        parts.append({
            "width": spec.width, "height": spec.height, "x": spec.x, "y": spec.y,
            "full": (spec.full_x, spec.full_y, spec.full_width, spec.full_height),
            "channels": list(spec.channelnames),
            "formats": [str(f) for f in spec.channelformats] or [str(spec.format)],
            "tile": (spec.tile_width, spec.tile_height),
            "deep": spec.deep,
            "attributes": [(a.name, str(a.type), a.value) for a in spec.extra_attribs],
        })
        sub += 1
    inp.close()
    return {"path": path, "parts": parts}


def run_oiio(files: list[str]) -> tuple[float, float, list[str]]:
    refused = []
    t0, c0 = time.perf_counter(), self_cpu()
    for f in files:
        rec = oiio_read(f)
        if "error" in rec:
            refused.append(f)
    return time.perf_counter() - t0, self_cpu() - c0, refused


def bench(name: str, binary: str, files: list[str], rounds: int) -> dict:
    for f in files:  # warm the page cache
        with open(f, "rb") as fh:
            fh.read()
    ex, oi = [], []
    refused: list[str] = []
    failed = 0
    for _ in range(rounds):
        wall, cpu, failed = run_exrscan(binary, files)
        ex.append((wall, cpu))
        wall, cpu, refused = run_oiio(files)
        oi.append((wall, cpu))
    ex_wall = statistics.median(w for w, _ in ex)
    ex_cpu = statistics.median(c for _, c in ex)
    oi_wall = statistics.median(w for w, _ in oi)
    oi_cpu = statistics.median(c for _, c in oi)
    n = len(files)
    return {
        "set": name, "files": n, "rounds": rounds,
        "exrscan_files_per_s": n / ex_wall, "exrscan_files_per_cpu_s": n / ex_cpu if ex_cpu else None,
        "oiio_files_per_s": n / oi_wall, "oiio_files_per_cpu_s": n / oi_cpu if oi_cpu else None,
        "ratio_wall": oi_wall / ex_wall, "ratio_cpu": (oi_cpu / ex_cpu) if ex_cpu else None,
        "exrscan_ok_false": failed, "oiio_refused": refused,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--exrscan", required=True)
    ap.add_argument("--corpus", type=Path, help="corpus dir (default: generate one)")
    ap.add_argument("--copies", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, help="write the results here too")
    args = ap.parse_args()
    oiio.attribute("threads", 1)
    oiio.attribute("exr_threads", 1)

    tmp = Path(tempfile.mkdtemp(prefix="exrscan-bench-"))
    try:
        corpus = args.corpus
        if corpus is None:
            corpus = tmp / "corpus"
            generate.generate(corpus, 1)
        corpus_files = sorted(str(p) for p in corpus.rglob("*.exr"))
        beauty = beauty_set(tmp / "beauty", args.copies)
        results = [bench("corpus", args.exrscan, corpus_files, args.rounds),
                   bench("beauty", args.exrscan, beauty, args.rounds)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"exrscan {args.exrscan}; OpenImageIO {oiio.__version__}; OpenEXR bindings "
          f"{OpenEXR.__version__}; {os.cpu_count()} CPUs; median of {args.rounds} rounds\n")
    print("| set | files | exrscan files/s (wall) | OIIO files/s (wall) | ratio (wall) "
          "| exrscan files/CPU-s | OIIO files/CPU-s | ratio (CPU) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['set']} | {r['files']} | {r['exrscan_files_per_s']:,.0f} | "
              f"{r['oiio_files_per_s']:,.0f} | {r['ratio_wall']:.1f}× | "
              f"{r['exrscan_files_per_cpu_s'] or 0:,.0f} | {r['oiio_files_per_cpu_s'] or 0:,.0f} | "
              f"{r['ratio_cpu'] or 0:.1f}× |")
    for r in results:
        if r["oiio_refused"]:
            print(f"\nOIIO refused {len(r['oiio_refused'])} of the {r['set']} files "
                  f"(counted as handled):")
            for f in r["oiio_refused"]:
                print(f"  {os.path.relpath(f, tmp) if f.startswith(str(tmp)) else f}")
        print(f"exrscan reported ok:false for {r['exrscan_ok_false']} {r['set']} files")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
