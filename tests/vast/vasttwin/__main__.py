"""Run the VAST DataBase protocol twin: `python -m vasttwin --db FILE --bucket NAME …`.

Credentials come from the environment, `VAST_TWIN_KEYS="access:secret[,access:secret…]"`, so no
secret shows in a process listing. Prints `listening on <port>` once it accepts requests.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import ssl
import sys
import threading

import duckdb

from .catalog import Catalog
from .recorder import Recorder
from .server import Twin, serve
from .transactions import Transactions


def _keys(spec: str) -> dict[str, str]:
    pairs = [p.split(":", 1) for p in spec.split(",") if p]
    if not pairs or any(len(p) != 2 or not all(p) for p in pairs):
        raise SystemExit("VAST_TWIN_KEYS must be access:secret[,access:secret…]")
    return dict(pairs)


def main() -> None:
    ap = argparse.ArgumentParser(prog="vasttwin", description=__doc__)
    ap.add_argument("--db", required=True, help="DuckDB database file (kept across restarts)")
    ap.add_argument("--bucket", action="append", required=True, help="a bucket that exists (repeatable)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument(
        "--tx-timeout", type=float, default=300.0, help="seconds a transaction may stay idle before it is rolled back"
    )
    ap.add_argument("--record", help="append one JSON line per request to this file")
    ap.add_argument(
        "--vast-version",
        default="5.4.0.0",
        help="announced in the Server header (5.5+ makes the SDK expect per-column metadata)",
    )
    ap.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate chain (needs --tls-key)")
    ap.add_argument("--tls-key", help="the PEM key of --tls-cert")
    ap.add_argument("--log-level", default="WARNING")
    args = ap.parse_args()
    logging.basicConfig(level=args.log_level, format="vasttwin %(levelname)s %(name)s: %(message)s")

    keys = _keys(os.environ.get("VAST_TWIN_KEYS", ""))
    db = duckdb.connect(args.db)
    db.execute("SET TimeZone = 'UTC'")
    catalog = Catalog(db, args.bucket)
    transactions = Transactions(db, args.tx_timeout)
    recorder = Recorder(args.record) if args.record else None
    twin = Twin(catalog, transactions, keys, args.vast_version, args.host, recorder)
    server = serve(twin, args.host, args.port)
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"listening on {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        transactions.close()
        if recorder is not None:
            recorder.close()
        db.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
