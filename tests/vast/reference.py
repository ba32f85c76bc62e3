"""The catalog's operations performed by VAST's official SDK — the reference side of a request
conformance test. Run it against a recording twin and compare the recording with the Rust sink's:

    VAST_TWIN_KEYS=access:secret python reference.py --endpoint http://127.0.0.1:PORT --bucket B

Operations, each in its own transaction, as the sink performs them: create the schema
`exrscan/<shard>` and the four tables (`write_id` included); insert one batch into the child
tables, then `files`; the existence query (`file_id` in a set, projecting `file_id`); the
resume query (`source_uri` in a set, projecting what it compares). The batch is `--files`
generated files, or the rows a test wrote as Arrow IPC streams `<table>.arrow` in `--rows`
(then both sides of the comparison insert the very same rows).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pyarrow as pa

import vastdb
from catalog_rows import rows
from catalog_schema import TABLES


# The sink's write order: child tables first, `files` last.
WRITE_ORDER = ("parts", "channels", "attributes", "files")


def load(rows_dir: Path) -> dict[str, pa.Table]:
    """The batch a test wrote: one Arrow IPC stream per table."""
    return {name: pa.ipc.open_stream((rows_dir / f"{name}.arrow").read_bytes()).read_all() for name in TABLES}


def run(
    endpoint: str, access: str, secret: str, bucket: str, shard: str, files: int, rows_dir: Path | None = None
) -> None:
    session = vastdb.connect(endpoint=endpoint, access=access, secret=secret)
    with session.transaction() as tx:
        top = tx.bucket(bucket).create_schema("exrscan", fail_if_exists=False)
        target = top.create_schema(shard, fail_if_exists=False)
        for name, schema in TABLES.items():
            target.create_table(name, schema, fail_if_exists=False)
    if rows_dir is None:
        batch = {name: rows(schema, files, "ref", "w-ref") for name, schema in TABLES.items()}
    else:
        batch = load(rows_dir)
    with session.transaction() as tx:
        target = tx.bucket(bucket).schema("exrscan").schema(shard)
        for name in WRITE_ORDER:
            target.table(name).insert(batch[name])
    ids = batch["files"]["file_id"].to_pylist()[:2] + ["absent"]
    uris = batch["files"]["source_uri"].to_pylist()[:2]
    with session.transaction() as tx:
        files_table = tx.bucket(bucket).schema("exrscan").schema(shard).table("files")
        files_table.select(columns=["file_id"], predicate=files_table["file_id"].isin(ids)).read_all()
    with session.transaction() as tx:
        files_table = tx.bucket(bucket).schema("exrscan").schema(shard).table("files")
        files_table.select(
            columns=["source_uri", "size_bytes", "etag", "last_modified"],
            predicate=files_table["source_uri"].isin(uris),
        ).read_all()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--bucket", required=True)
    ap.add_argument("--shard", default="shard-0")
    ap.add_argument("--files", type=int, default=3)
    ap.add_argument("--rows", type=Path, help="a directory of <table>.arrow IPC streams to insert instead")
    args = ap.parse_args()
    access, _, secret = os.environ.get("VAST_TWIN_KEYS", "").partition(":")
    if not access or not secret:
        raise SystemExit("VAST_TWIN_KEYS must be access:secret")
    run(args.endpoint, access, secret, args.bucket, args.shard, args.files, args.rows)


if __name__ == "__main__":
    main()
