"""Schemas, tables and rows of the twin, kept in one DuckDB database file.

Everything, the catalog included, lives in DuckDB tables, so DDL and rows share the caller's
transaction: a rolled-back `create_table` leaves nothing behind. Layout:
  twin_schemas(bucket, path, properties)                   nested schemas: path "a/b/c"
  twin_tables(handle, bucket, schema_path, name, arrow_schema)   Arrow IPC schema message
  data_<handle>("$row_id" UBIGINT, <the table's columns>)
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from .errors import ApiError

ROW_ID = "$row_id"
ROW_ID_FIELD = pa.field(ROW_ID, pa.uint64())
INVALID_ROW_ID = (1 << 48) - 1


def missing(what: str) -> ApiError:
    return ApiError(404, "NoSuchKey", f"{what} does not exist")


def run(cur, sql: str, params: list | None = None) -> list[tuple]:
    """Execute and fetch everything (DuckDB refuses new work while a result is unfinished)."""
    return cur.execute(sql, params or []).fetchall()


def quote_ident(name: str) -> str:
    """A DuckDB identifier for `name`."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class TableInfo:
    """A table as the catalog knows it."""

    handle: int
    name: str
    arrow_schema: pa.Schema

    @property
    def data(self) -> str:
        return f"data_{self.handle}"


def _numeric(t: pa.DataType) -> bool:
    return (
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_decimal(t)
        or pa.types.is_date(t)
        or pa.types.is_timestamp(t)
        or pa.types.is_time(t)
    )


def check_column_type(field: pa.Field) -> None:
    """Refuse column types VAST refuses (per the SDK's tests) or the twin cannot serve."""
    t = field.type
    if pa.types.is_fixed_size_list(t):
        item = t.value_field
        if t.list_size <= 0:
            raise ApiError(400, "TabularInvalidColumnTypeParam", f"{field.name}: fixed-size list of {t.list_size}")
        if item.nullable or not _numeric(item.type):
            raise ApiError(
                400,
                "TabularUnsupportedColumnType",
                f"{field.name}: fixed-size lists need non-nullable numeric items, got {item}",
            )
    elif pa.types.is_struct(t) or pa.types.is_map(t) or pa.types.is_list(t) or pa.types.is_large_list(t):
        # VAST stores these; the twin answers queries one leaf per top-level column only.
        raise ApiError(501, "NotImplemented", f"{field.name}: {t} is not served by the twin")


class Catalog:
    """Catalog operations over a transaction's DuckDB cursor."""

    def __init__(self, db: duckdb.DuckDBPyConnection, buckets: list[str]):
        self.buckets = set(buckets)
        run(
            db,
            "CREATE TABLE IF NOT EXISTS twin_schemas(bucket VARCHAR, path VARCHAR, properties VARCHAR,"
            " PRIMARY KEY(bucket, path))",
        )
        run(
            db,
            "CREATE TABLE IF NOT EXISTS twin_tables(handle UBIGINT PRIMARY KEY, bucket VARCHAR,"
            " schema_path VARCHAR, name VARCHAR, arrow_schema BLOB)",
        )
        start = run(db, "SELECT coalesce(max(handle), 0) + 1 FROM twin_tables")[0][0]
        self._handles = itertools.count(start)
        self._next_row_id: dict[int, int] = {}
        self._lock = threading.Lock()

    # Buckets and schemas.

    def has_bucket(self, bucket: str) -> bool:
        return bucket in self.buckets

    def _need_bucket(self, bucket: str) -> None:
        if bucket not in self.buckets:
            raise ApiError(404, "NoSuchBucket", f"bucket {bucket} does not exist")

    def _schema_exists(self, cur, bucket: str, path: str) -> bool:
        return run(cur, "SELECT count(*) FROM twin_schemas WHERE bucket = ? AND path = ?", [bucket, path])[0][0] > 0

    def _need_schema(self, cur, bucket: str, path: str) -> None:
        self._need_bucket(bucket)
        if not self._schema_exists(cur, bucket, path):
            raise missing(f"schema {bucket}/{path}")

    def create_schema(self, cur, bucket: str, path: str, properties: str) -> None:
        self._need_bucket(bucket)
        if not path or "" in path.split("/"):
            raise ApiError(400, "InvalidArgument", f"bad schema name {path!r}")
        parent = path.rpartition("/")[0]
        if parent:
            self._need_schema(cur, bucket, parent)
        if self._schema_exists(cur, bucket, path):
            raise ApiError(409, "TabularSchemaAlreadyExists", f"schema {bucket}/{path} exists")
        run(cur, "INSERT INTO twin_schemas VALUES (?, ?, ?)", [bucket, path, properties])

    def list_schemas(self, cur, bucket: str, parent: str) -> list[tuple[str, str]]:
        """Direct children of `parent` ("" for the bucket's root): (name relative to parent, properties)."""
        self._need_bucket(bucket)
        if parent:
            self._need_schema(cur, bucket, parent)
        prefix = parent + "/" if parent else ""
        rows = run(
            cur,
            "SELECT path, properties FROM twin_schemas WHERE bucket = ? AND starts_with(path, ?) ORDER BY path",
            [bucket, prefix],
        )
        return [(p[len(prefix) :], props) for p, props in rows if "/" not in p[len(prefix) :]]

    def drop_schema(self, cur, bucket: str, path: str) -> None:
        self._need_schema(cur, bucket, path)
        children = run(
            cur, "SELECT count(*) FROM twin_schemas WHERE bucket = ? AND starts_with(path, ?)", [bucket, path + "/"]
        )[0][0]
        tables = run(cur, "SELECT count(*) FROM twin_tables WHERE bucket = ? AND schema_path = ?", [bucket, path])[0][0]
        if children or tables:
            raise ApiError(409, "TabularSchemaNotEmpty", f"schema {bucket}/{path} is not empty")
        run(cur, "DELETE FROM twin_schemas WHERE bucket = ? AND path = ?", [bucket, path])

    # Tables.

    def create_table(self, cur, bucket: str, schema: str, name: str, arrow_schema: pa.Schema) -> None:
        self._need_schema(cur, bucket, schema)
        if not name or "/" in name:
            raise ApiError(400, "InvalidArgument", f"bad table name {name!r}")
        if self._find_table(cur, bucket, schema, name) is not None:
            raise ApiError(409, "TabularTableAlreadyExists", f"table {bucket}/{schema}/{name} exists")
        if len(set(arrow_schema.names)) != len(arrow_schema.names) or ROW_ID in arrow_schema.names:
            raise ApiError(400, "InvalidArgument", "duplicate or reserved column names")
        for f in arrow_schema:
            check_column_type(f)
        with self._lock:
            handle = next(self._handles)
        run(
            cur,
            "INSERT INTO twin_tables VALUES (?, ?, ?, ?, ?)",
            [handle, bucket, schema, name, arrow_schema.serialize().to_pybytes()],
        )
        cur.register("twin_empty", arrow_schema.empty_table())
        try:
            run(
                cur,
                f"CREATE TABLE data_{handle} AS SELECT CAST(NULL AS UBIGINT) AS {quote_ident(ROW_ID)}, *"
                " FROM twin_empty",
            )
        finally:
            cur.unregister("twin_empty")

    def _find_table(self, cur, bucket: str, schema: str, name: str) -> TableInfo | None:
        row = (
            run(
                cur,
                "SELECT handle, arrow_schema FROM twin_tables WHERE bucket = ? AND schema_path = ? AND name = ?",
                [bucket, schema, name],
            )
            or [None]
        )[0]
        if row is None:
            return None
        return TableInfo(row[0], name, pa.ipc.read_schema(pa.py_buffer(row[1])))

    def table(self, cur, bucket: str, schema: str, name: str) -> TableInfo:
        """The table, or a 404."""
        self._need_schema(cur, bucket, schema)
        info = self._find_table(cur, bucket, schema, name)
        if info is None:
            raise missing(f"table {bucket}/{schema}/{name}")
        return info

    def list_tables(self, cur, bucket: str, schema: str) -> list[TableInfo]:
        self._need_schema(cur, bucket, schema)
        rows = run(
            cur,
            "SELECT handle, name, arrow_schema FROM twin_tables WHERE bucket = ? AND schema_path = ? ORDER BY name",
            [bucket, schema],
        )
        return [TableInfo(h, n, pa.ipc.read_schema(pa.py_buffer(s))) for h, n, s in rows]

    def num_rows(self, cur, table: TableInfo) -> int:
        return run(cur, f"SELECT count(*) FROM {table.data}")[0][0]

    def drop_table(self, cur, bucket: str, schema: str, name: str) -> None:
        info = self.table(cur, bucket, schema, name)
        run(cur, f"DROP TABLE {info.data}")
        run(cur, "DELETE FROM twin_tables WHERE handle = ?", [info.handle])

    # Rows.

    def _allocate_row_ids(self, cur, table: TableInfo, n: int) -> pa.Array:
        """Row ids count up per table; ids of rolled-back rows are not reused while the twin runs."""
        with self._lock:
            first = self._next_row_id.get(table.handle)
            if first is None:
                first = run(cur, f"SELECT coalesce(max({quote_ident(ROW_ID)}) + 1, 0) FROM {table.data}")[0][0]
            self._next_row_id[table.handle] = first + n
        return pa.array(range(first, first + n), pa.uint64())

    def _check_columns(self, table: TableInfo, batch: pa.RecordBatch, skip: int = 0) -> None:
        for f in list(batch.schema)[skip:]:
            idx = table.arrow_schema.get_field_index(f.name)
            if idx < 0:
                raise ApiError(400, "TabularColumnNotFound", f"no column {f.name} in {table.name}")
            if not f.type.equals(table.arrow_schema.field(idx).type):
                raise ApiError(
                    400,
                    "TabularInvalidColumnType",
                    f"{f.name}: {f.type} does not match the table's {table.arrow_schema.field(idx).type}",
                )

    def insert(self, cur, table: TableInfo, batch: pa.RecordBatch) -> pa.Array:
        """Insert rows (any subset of the columns, as VAST allows); returns their row ids."""
        self._check_columns(table, batch)
        ids = self._allocate_row_ids(cur, table, batch.num_rows)
        rows = pa.Table.from_batches([batch]).add_column(0, ROW_ID, ids)
        cur.register("twin_rows", rows)
        try:
            run(cur, f"INSERT INTO {table.data} BY NAME SELECT * FROM twin_rows")
        finally:
            cur.unregister("twin_rows")
        return ids

    def update(self, cur, table: TableInfo, batch: pa.RecordBatch) -> None:
        """Set columns of rows named by the batch's first column, `$row_id`."""
        if batch.num_columns < 2 or batch.schema[0].name != ROW_ID:
            raise ApiError(400, "InvalidArgument", "an update's first column must be $row_id")
        self._check_columns(table, batch, skip=1)
        rows = pa.Table.from_batches([batch])
        rows = rows.set_column(0, ROW_ID, rows.column(0).cast(pa.uint64()))
        sets = ", ".join(f"{quote_ident(n)} = u.{quote_ident(n)}" for n in batch.schema.names[1:])
        cur.register("twin_updates", rows)
        try:
            run(
                cur,
                f"UPDATE {table.data} SET {sets} FROM twin_updates u"
                f" WHERE {table.data}.{quote_ident(ROW_ID)} = u.{quote_ident(ROW_ID)}",
            )
        finally:
            cur.unregister("twin_updates")

    def select(
        self,
        cur,
        table: TableInfo,
        columns: list[str],
        where: str,
        params: list,
        split: tuple[int, int],
        start_row_id: int,
        limit: int,
    ) -> tuple[pa.Table, int]:
        """Rows of one sub-split (`$row_id % split[1] == split[0]`) from `start_row_id` on, at most `limit`.

        Returns the rows (projected to `columns`, typed as the table's schema) and the next row id to
        ask for, INVALID_ROW_ID when the sub-split is exhausted.
        """
        rid = quote_ident(ROW_ID)
        # The paging key under a name no column has: `$row_id` may also be projected.
        cols = ", ".join([f"{rid} AS twin_page_key"] + [quote_ident(c) for c in columns])
        sql = f"SELECT {cols} FROM {table.data} WHERE ({where}) AND {rid} % ? = ? AND {rid} >= ? ORDER BY {rid} LIMIT ?"
        result = cur.sql(sql, params=[*params, split[1], split[0], start_row_id, limit + 1]).to_arrow_table()
        next_row_id = INVALID_ROW_ID
        if result.num_rows > limit:
            next_row_id = result.column(0)[limit].as_py()
            result = result.slice(0, limit)
        result = result.drop_columns(["twin_page_key"])
        if columns:  # (casting to an empty schema would also drop the row count)
            fields = [ROW_ID_FIELD if c == ROW_ID else table.arrow_schema.field(c) for c in columns]
            result = result.rename_columns(columns).cast(pa.schema(fields))
        return result, next_row_id

    def delete(self, cur, table: TableInfo, batch: pa.RecordBatch) -> int:
        """Delete the rows named by the batch's only column, `$row_id`; returns how many existed."""
        if batch.num_columns != 1 or batch.schema[0].name != ROW_ID:
            raise ApiError(400, "InvalidArgument", "a delete's only column must be $row_id")
        rows = pa.table({ROW_ID: batch.column(0).cast(pa.uint64())})
        cur.register("twin_deletes", rows)
        try:
            rid = quote_ident(ROW_ID)
            found = run(cur, f"DELETE FROM {table.data} WHERE {rid} IN (SELECT {rid} FROM twin_deletes) RETURNING 1")
        finally:
            cur.unregister("twin_deletes")
        return len(found)
