"""Fixtures: the protocol twin as a real process on 127.0.0.1, and sessions of the official SDK."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

try:
    import duckdb  # noqa: F401
    import flatbuffers  # noqa: F401
    import pyarrow  # noqa: F401
    import vastdb
except ImportError as e:  # a missing part fails the run loudly, it never skips
    pytest.exit(
        f"tests/vast needs vastdb, duckdb, flatbuffers and pyarrow ({e}); "
        "run tests/env/setup.sh and use $EXRSCAN_VAST_PYTHON",
        returncode=3,
    )

HERE = Path(__file__).resolve().parent
ACCESS, SECRET = "exrscan-test-access", "exrscan-test-secret"
BUCKET = "catalog"
START_TIMEOUT = 60


@dataclass
class Twin:
    """A twin process over a database file that outlives restarts."""

    workdir: Path
    tx_timeout: float = 300.0
    record: Path | None = None
    proc: subprocess.Popen | None = None
    port: int = 0
    stderr_lines: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "vasttwin",
            "--db",
            str(self.workdir / "twin.duckdb"),
            "--bucket",
            BUCKET,
            "--tx-timeout",
            str(self.tx_timeout),
        ]
        if self.record is not None:
            cmd += ["--record", str(self.record)]
        env = dict(os.environ, VAST_TWIN_KEYS=f"{ACCESS}:{SECRET}", PYTHONPATH=str(HERE))
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.stderr_lines = []
        threading.Thread(target=lambda: self.stderr_lines.extend(self.proc.stderr), daemon=True).start()
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(START_TIMEOUT)
        if not line or not line[0].startswith("listening on "):
            self.proc.kill()
            pytest.fail(f"the VAST twin did not start within {START_TIMEOUT}s: {''.join(self.stderr_lines)[-2000:]}")
        self.port = int(line[0].split()[-1])

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as a crash."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def session(self, access: str = ACCESS, secret: str = SECRET) -> vastdb.session.Session:
        return vastdb.connect(endpoint=self.endpoint, access=access, secret=secret)

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.record.read_text().splitlines()]


@pytest.fixture
def twin(tmp_path):
    t = Twin(tmp_path, record=tmp_path / "requests.jsonl")
    t.start()
    yield t
    t.stop()
