"""Recording mode: one JSON line per request, the ground a request-conformance test compares.

A line holds the method, path, query parameters, headers (without the signature and the
date, which differ on every run), the decoded body (flatbuffer as JSON, Arrow schema and rows
as JSON) and the status the twin answered.
"""

from __future__ import annotations

import base64
import datetime
import json
import threading

import pyarrow as pa

from . import messages, query

# Headers that differ between two runs of the same operations.
VOLATILE_HEADERS = {"authorization", "x-amz-date"}


def schema_json(schema: pa.Schema) -> list[dict]:
    """An Arrow schema as plain data."""
    return [
        {
            "name": f.name,
            "type": str(f.type),
            "nullable": f.nullable,
            "metadata": {k.decode(): v.decode() for k, v in (f.metadata or {}).items()},
        }
        for f in schema
    ]


def _value(v):
    if isinstance(v, (datetime.datetime, datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    if isinstance(v, float) and v != v:
        return "NaN"
    return str(v)


def decode_body(method: str, command: str, body: bytes):
    """The request body as plain data, by what the command carries."""
    if not body:
        return None
    if command == "schema" and method in ("POST", "PUT"):
        return {"create_schema": messages.decode_create_schema(body)}
    if command == "table" and method == "POST":
        return {"arrow_schema": schema_json(pa.ipc.read_schema(pa.py_buffer(body)))}
    if command == "rows":
        rows = pa.ipc.open_stream(body).read_all()
        return {"arrow": {"schema": schema_json(rows.schema), "rows": rows.to_pylist()}}
    if command == "data":
        return {"query_data": query.decode_request(body)}
    return {"hex": body.hex()}


class Recorder:
    """Appends request records to a JSON-lines file."""

    def __init__(self, path: str):
        self._file = open(path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def record(
        self,
        method: str,
        path: str,
        params: list[tuple[str, str]],
        headers: dict[str, str],
        command: str,
        body: bytes,
        status: int,
        note: dict,
    ) -> None:
        try:
            decoded = decode_body(method, command, body)
        except Exception as e:  # a malformed body is recorded as such, not fatal
            decoded = {"undecodable": str(e), "hex": body.hex()}
        line = json.dumps(
            {
                "method": method,
                "path": path,
                "query": params,
                "headers": {k: v for k, v in sorted(headers.items()) if k not in VOLATILE_HEADERS},
                "body": decoded,
                "status": status,
                **note,
            },
            default=_value,
        )
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        self._file.close()
