"""HTTP routing of the tabular API subset: `/<bucket>/<schema path>/<table>?<command>`.

Every request is SigV4-verified, then dispatched on (method, command). Errors are S3-style XML
(`<Error><Code>…</Code><Message>…</Message></Error>`), which the SDK maps onto its exceptions.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote
from xml.sax.saxutils import escape

import duckdb
import pyarrow as pa

from . import messages, query, sigv4
from .catalog import INVALID_ROW_ID, ROW_ID, Catalog
from .errors import ApiError
from .recorder import Recorder
from .transactions import Transactions, UnknownTransaction

log = logging.getLogger(__name__)


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # Facts about the answer for the recording (e.g. rows a query shipped).
    note: dict = field(default_factory=dict)


def _error(status: int, code: str, message: str) -> Response:
    xml = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{escape(code)}</Code>'
        f"<Message>{escape(message)}</Message></Error>"
    )
    return Response(status, xml.encode(), {"Content-Type": "application/xml"})


def _ipc_stream(schema: pa.Schema, batches: list[pa.RecordBatch] = ()) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, schema) as w:
        for b in batches:
            w.write_batch(b)
    return sink.getvalue()


def _txid(headers: dict[str, str]) -> int:
    try:
        return int(headers.get("tabular-txid", "0"))
    except ValueError:
        raise ApiError(400, "InvalidArgument", "tabular-txid is not an integer") from None


def _read_batch(body: bytes) -> pa.RecordBatch:
    rows = pa.ipc.open_stream(body).read_all().combine_chunks()
    batches = rows.to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=rows.schema)


@dataclass
class Twin:
    """The state behind the HTTP handler."""

    catalog: Catalog
    transactions: Transactions
    keys: dict[str, str]
    vast_version: str
    vip: str
    recorder: Recorder | None = None

    def handle(
        self,
        method: str,
        segments: list[str],
        command: str,
        params: dict[str, str],
        headers: dict[str, str],
        body: bytes,
    ) -> Response:
        if params:  # sub-tables, projections, renames…: not what the catalog uses
            raise ApiError(501, "NotImplemented", f"query parameters {sorted(params)} are not served by the twin")
        if not segments:
            if command != "transaction":
                raise ApiError(400, "InvalidRequest", "only ?transaction is served at /")
            return self._transaction(method, headers)
        bucket, rest = segments[0], segments[1:]
        if not command:
            if method == "HEAD" and not rest:
                return Response(200 if self.catalog.has_bucket(bucket) else 404)
            raise ApiError(501, "NotImplemented", f"{method} without a tabular command")
        with self.transactions.use(_txid(headers)) as cur:
            return self._command(cur, method, command, bucket, rest, headers, body)

    def _transaction(self, method: str, headers: dict[str, str]) -> Response:
        if method == "GET" and headers.get("tabular-get-vast-version", "").lower() == "true":
            return Response()
        if method == "POST":
            return Response(headers={"tabular-txid": str(self.transactions.begin())})
        txid = _txid(headers)
        if method == "GET":
            if not self.transactions.exists(txid):
                raise UnknownTransaction(f"transaction {txid:#x} is not open")
        elif method == "PUT":
            self.transactions.commit(txid)
        elif method == "DELETE":
            self.transactions.rollback(txid)
        else:
            raise ApiError(405, "MethodNotAllowed", f"{method} ?transaction")
        return Response()

    def _command(self, cur, method, command, bucket, rest, headers, body) -> Response:
        cat = self.catalog
        path = "/".join(rest)
        schema, name = "/".join(rest[:-1]), (rest[-1] if rest else "")
        match (method, command):
            case ("POST", "schema"):
                cat.create_schema(cur, bucket, path, messages.decode_create_schema(body)["properties"])
                return Response()
            case ("GET", "schema"):
                schemas, extra = self._page(cat.list_schemas(cur, bucket, path), lambda s: s[0], headers)
                return Response(body=messages.list_schemas(bucket, schemas), headers=extra)
            case ("DELETE", "schema"):
                cat.drop_schema(cur, bucket, path)
                return Response()
            case ("POST", "table"):
                cat.create_table(cur, bucket, schema, name, pa.ipc.read_schema(pa.py_buffer(body)))
                return Response()
            case ("GET", "table"):
                tables, extra = self._page(cat.list_tables(cur, bucket, path), lambda t: t.name, headers)
                listed = [(t.name, t.handle, cat.num_rows(cur, t)) for t in tables]
                return Response(body=messages.list_tables(bucket, path, listed), headers=extra)
            case ("DELETE", "table"):
                cat.drop_table(cur, bucket, schema, name)
                return Response()
            case ("GET", "column" | "sorted-columns"):
                info = cat.table(cur, bucket, schema, name)
                # No sorting keys: the sorted-columns listing is empty.
                columns = info.arrow_schema if command == "column" else pa.schema([])
                fields, extra = self._page(list(columns), lambda f: f.name, headers)
                return Response(body=_ipc_stream(pa.schema(fields, metadata=columns.metadata)), headers=extra)
            case ("GET", "stats"):
                info = cat.table(cur, bucket, schema, name)
                rows = cat.num_rows(cur, info)
                return Response(body=messages.table_stats(rows, 0, self.vip))
            case ("POST", "rows"):
                info = cat.table(cur, bucket, schema, name)
                ids = cat.insert(cur, info, _read_batch(body))
                ids_schema = pa.schema([pa.field(ROW_ID, pa.uint64())])
                return Response(body=_ipc_stream(ids_schema, [pa.record_batch([ids], schema=ids_schema)]))
            case ("PUT", "rows"):
                cat.update(cur, cat.table(cur, bucket, schema, name), _read_batch(body))
                return Response()
            case ("DELETE", "rows"):
                deleted = cat.delete(cur, cat.table(cur, bucket, schema, name), _read_batch(body))
                return Response(note={"rows_deleted": deleted})
            case ("GET", "data"):
                return self._query(cur, cat.table(cur, bucket, schema, name), headers, body)
        raise ApiError(501, "NotImplemented", f"{method} ?{command} is not served by the twin")

    @staticmethod
    def _page(items: list, name_of, headers: dict[str, str]) -> tuple[list, dict[str, str]]:
        """Name filter and paging of the listing calls (next key = offset into the listing)."""
        if "tabular-name-exact-match" in headers:
            items = [i for i in items if name_of(i) == headers["tabular-name-exact-match"]]
        else:
            items = [i for i in items if name_of(i).startswith(headers.get("tabular-name-prefix", ""))]
        start = int(headers.get("tabular-next-key", "0"))
        count = int(headers.get("tabular-max-keys", "1000"))
        page = items[start : start + count]
        extra = {
            "tabular-next-key": str(start + len(page)),
            "tabular-is-truncated": "true" if start + len(page) < len(items) else "false",
            "tabular-list-count": str(len(items)),
        }
        if headers.get("tabular-list-count-only", "").lower() == "true":
            page = []
        return page, extra

    def _query(self, cur, info, headers: dict[str, str], body: bytes) -> Response:
        request = query.decode_request(body)
        plan = query.plan(request)
        for c in plan.columns + [f["name"] for f in request["schema"]]:
            if c != ROW_ID and info.arrow_schema.get_field_index(c) < 0:
                raise ApiError(400, "TabularColumnNotFound", f"no column {c} in {info.name}")
        split_id, num_splits, _row_groups = (int(x) for x in headers.get("tabular-split", "0,1,1").split(","))
        num_sub = int(headers.get("tabular-num-of-subsplits", "1"))
        limit = int(headers.get("tabular-limit-rows", str(1 << 62)))
        out, sent = bytearray(), 0
        for sub in range(num_sub):
            start = int(headers.get(f"tabular-start-row-id-{sub}", f"{sub},0").split(",")[1])
            if start == INVALID_ROW_ID:
                continue
            rows, next_row_id = self.catalog.select(
                cur,
                info,
                plan.columns,
                plan.where,
                plan.params,
                (split_id * num_sub + sub, num_splits * num_sub),
                start,
                limit,
            )
            out += query.encode_stream(sub, next_row_id, rows)
            sent += rows.num_rows
        out += query.completed()
        return Response(body=bytes(out), headers={"Content-Type": "application/octet-stream"}, note={"rows_sent": sent})


class Handler(BaseHTTPRequestHandler):
    """One HTTP request to the twin."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without this each answer waits ~40 ms on
    # Nagle's algorithm and the client's delayed ACK.
    disable_nagle_algorithm = True
    twin: Twin  # set on the subclass made by `serve`

    def version_string(self) -> str:
        # The SDK refuses a server whose `Server` header is not `vast <major.minor.patch.protocol>`.
        return f"vast {self.twin.vast_version}"

    def log_message(self, fmt, *args) -> None:
        log.debug("%s " + fmt, self.address_string(), *args)

    def _dispatch(self) -> None:
        raw_path, _, raw_query = self.path.partition("?")
        pairs = parse_qsl(raw_query, keep_blank_values=True)
        command = next((k for k, v in pairs if v == ""), "")
        params = {k: v for k, v in pairs if k != command}
        headers = {k.lower(): v for k, v in self.headers.items()}
        if "transfer-encoding" in headers:  # the SDK always sends Content-Length
            self.close_connection = True
            resp = _error(501, "NotImplemented", "Transfer-Encoding is not supported; send Content-Length")
            self._send(resp)
            return
        body = self.rfile.read(int(headers.get("content-length", "0") or 0))
        segments = [unquote(s) for s in raw_path.strip("/").split("/") if s]
        try:
            sigv4.verify(self.command, raw_path, raw_query, headers, body, self.twin.keys)
            resp = self.twin.handle(self.command, segments, command, params, headers, body)
        except sigv4.AuthError as e:
            resp = _error(403, e.code, e.message)
        except ApiError as e:
            resp = _error(e.status, e.code, e.message)
        except UnknownTransaction as e:
            resp = _error(404, "TabularTransactionNotFound", str(e))
        except duckdb.TransactionException as e:
            resp = _error(409, "Conflict", str(e))
        except Exception as e:  # noqa: BLE001 - any other failure is the server's, as a 500
            log.exception("%s %s failed", self.command, self.path)
            resp = _error(500, "InternalError", f"{type(e).__name__}: {e}")
        if self.twin.recorder is not None:
            self.twin.recorder.record(self.command, raw_path, pairs, headers, command, body, resp.status, resp.note)
        self._send(resp)

    def _send(self, resp: Response) -> None:
        self.send_response(resp.status)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _dispatch


def serve(twin: Twin, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server bound to host:port (0 = any free port), not yet serving."""
    handler = type("TwinHandler", (Handler,), {"twin": twin})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
