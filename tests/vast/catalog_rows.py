"""Deterministic sample rows for the catalog tables (see catalog_schema.py)."""

import datetime

import pyarrow as pa

SOURCE_BUCKET = "renders"


def source_uri(tag: str, i: int) -> str:
    """The source URI of sample file `i` of batch `tag`."""
    return f"s3://{SOURCE_BUCKET}/{tag}/shot.{i:04d}.exr"


def rows(schema: pa.Schema, n: int, tag: str, write_id: str) -> pa.Table:
    """Deterministic rows for `schema`: row i of file `<tag>-<i>`; every fifth nullable value null."""
    base = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    cols = {}
    for f in schema:
        t = f.type
        if f.name == "file_id":
            values = [f"{tag}-{i:05d}" for i in range(n)]
        elif f.name == "source_uri":
            values = [source_uri(tag, i) for i in range(n)]
        elif f.name == "write_id":
            values = [write_id] * n
        elif pa.types.is_string(t):
            values = [f"{f.name}-{i}" for i in range(n)]
        elif pa.types.is_integer(t):
            values = [i * 7 + 1 for i in range(n)]
        elif pa.types.is_floating(t):
            values = [i * 0.25 for i in range(n)]
        elif pa.types.is_boolean(t):
            values = [i % 2 == 0 for i in range(n)]
        elif pa.types.is_timestamp(t):
            values = [base + datetime.timedelta(seconds=i, microseconds=i) for i in range(n)]
        elif pa.types.is_fixed_size_list(t):
            values = [[(i + k) / t.list_size for k in range(t.list_size)] for i in range(n)]
        else:
            raise AssertionError(f"no generator for {t}")
        if f.nullable:
            values = [None if i % 5 == 4 else v for i, v in enumerate(values)]
        cols[f.name] = pa.array(values, t)
    return pa.table(cols, schema=schema)
