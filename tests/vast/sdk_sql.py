"""SQL over a catalog read through VAST's official SDK — the independent reader of what the
`vast://` sink wrote. The four tables (and `removals`, when the catalog has it) are read
with `vastdb` into DuckDB, the `indexed_*`
relations are defined with the canonical-rows SQL of docs/queries.md (VAST has no views),
and the query's rows are printed as JSON:

    VAST_TWIN_KEYS=access:secret python sdk_sql.py --endpoint URL --bucket B --schema exrscan/x 'SELECT …'
"""

from __future__ import annotations

import argparse
import json
import os

import duckdb
import vastdb

TABLES = ("files", "parts", "channels", "attributes")

# The canonical rows (docs/queries.md, worker/src/sink/canonical.rs): a file's rows of the
# smallest write id that has a `files` row for it.
CANONICAL_FILES = (
    "SELECT * FROM files f WHERE NOT EXISTS "
    "(SELECT 1 FROM files g WHERE g.file_id = f.file_id AND g.write_id < f.write_id)"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--bucket", required=True)
    ap.add_argument("--schema", required=True, help="nested with /")
    ap.add_argument("sql")
    args = ap.parse_args()
    access, _, secret = os.environ["VAST_TWIN_KEYS"].partition(":")
    session = vastdb.connect(endpoint=args.endpoint, access=access, secret=secret)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    with session.transaction() as tx:
        schema = tx.bucket(args.bucket)
        for level in args.schema.split("/"):
            schema = schema.schema(level)
        for name in TABLES:
            con.register(f"arrow_{name}", schema.table(name).select().read_all())
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM arrow_{name}")
        removals = schema.table("removals", fail_if_missing=False)
        if removals is not None:
            con.register("arrow_removals", removals.select().read_all())
            con.execute("CREATE TABLE removals AS SELECT * FROM arrow_removals")
    con.execute(f"CREATE VIEW indexed_files AS {CANONICAL_FILES}")
    for name in TABLES[1:]:
        con.execute(
            f"CREATE VIEW indexed_{name} AS SELECT c.* FROM {name} c "
            "JOIN indexed_files f ON f.file_id = c.file_id AND f.write_id = c.write_id"
        )
    rows = con.sql(args.sql).to_arrow_table().to_pylist()
    print(json.dumps(rows, default=lambda v: v.hex() if isinstance(v, (bytes, bytearray)) else str(v)))


if __name__ == "__main__":
    main()
