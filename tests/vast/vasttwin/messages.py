"""Tabular flatbuffers outside QueryData: the CreateSchema request and the listing/stats responses.

Built and read with the generated Python modules shipped inside the `vastdb` package.
"""

from __future__ import annotations

import flatbuffers
from vastdb.vast_flatbuf.tabular import (
    CreateSchemaRequest,
    GetTableStatsResponse,
    ListSchemasResponse,
    ListTablesResponse,
    ObjectDetails,
    VipRange,
)


def _objects(b: flatbuffers.Builder, start_vector, items: list[dict]) -> int:
    offsets = []
    for item in items:
        strings = {k: b.CreateString(v) for k, v in item.items() if isinstance(v, str)}
        ObjectDetails.Start(b)
        ObjectDetails.AddName(b, strings["name"])
        ObjectDetails.AddProperties(b, strings["properties"])
        if "handle" in strings:
            ObjectDetails.AddHandle(b, strings["handle"])
        if "num_rows" in item:
            ObjectDetails.AddNumRows(b, item["num_rows"])
        offsets.append(ObjectDetails.End(b))
    start_vector(b, len(offsets))
    for o in reversed(offsets):
        b.PrependUOffsetTRelative(o)
    return b.EndVector()


def list_schemas(bucket: str, schemas: list[tuple[str, str]]) -> bytes:
    """ListSchemasResponse: `schemas` are (name, properties)."""
    b = flatbuffers.Builder(1024)
    vec = _objects(b, ListSchemasResponse.StartSchemasVector, [{"name": n, "properties": p} for n, p in schemas])
    bucket_name = b.CreateString(bucket)
    ListSchemasResponse.Start(b)
    ListSchemasResponse.AddBucketName(b, bucket_name)
    ListSchemasResponse.AddSchemas(b, vec)
    b.Finish(ListSchemasResponse.End(b))
    return bytes(b.Output())


def list_tables(bucket: str, schema: str, tables: list[tuple[str, int, int]]) -> bytes:
    """ListTablesResponse: `tables` are (name, handle, row count)."""
    b = flatbuffers.Builder(1024)
    vec = _objects(
        b,
        ListTablesResponse.StartTablesVector,
        [{"name": n, "properties": "", "handle": str(h), "num_rows": r} for n, h, r in tables],
    )
    bucket_name, schema_name = b.CreateString(bucket), b.CreateString(schema)
    ListTablesResponse.Start(b)
    ListTablesResponse.AddBucketName(b, bucket_name)
    ListTablesResponse.AddSchemaName(b, schema_name)
    ListTablesResponse.AddTables(b, vec)
    b.Finish(ListTablesResponse.End(b))
    return bytes(b.Output())


def table_stats(num_rows: int, size_in_bytes: int, vip: str) -> bytes:
    """GetTableStatsResponse naming one VIP, the twin's own address (the SDK sends queries there)."""
    b = flatbuffers.Builder(256)
    address = b.CreateString(vip)
    VipRange.Start(b)
    VipRange.AddStartAddress(b, address)
    VipRange.AddAddressCount(b, 1)
    vip_range = VipRange.End(b)
    GetTableStatsResponse.StartVipsVector(b, 1)
    b.PrependUOffsetTRelative(vip_range)
    vips = b.EndVector()
    GetTableStatsResponse.Start(b)
    GetTableStatsResponse.AddVips(b, vips)
    GetTableStatsResponse.AddNumRows(b, num_rows)
    GetTableStatsResponse.AddSizeInBytes(b, size_in_bytes)
    b.Finish(GetTableStatsResponse.End(b))
    return bytes(b.Output())


def decode_create_schema(body: bytes) -> dict:
    """The CreateSchemaRequest body as plain data."""
    if not body:
        return {"properties": ""}
    req = CreateSchemaRequest.CreateSchemaRequest.GetRootAs(body, 0)
    return {"properties": (req.Properties() or b"").decode()}
