"""QueryData (`GET …/table?data`): the request's flatbuffer, its predicate as SQL, the response framing.

The request body is an Arrow compute-IR `Relation` whose `Source` names the queried columns
(an Arrow flatbuffer `Schema`), a filter expression and a projection of leaf positions. The
twin reads it with the generated Python modules shipped inside the `vastdb` package (used as a
library at run time, nothing copied). The response is a sequence of chunks, one column at a
time: `u32 stream id, u64 next row id`, then one Arrow IPC message (schema, batch, or
end-of-stream); a `u32 0xFFFFFFFE` ends the response.
"""

from __future__ import annotations

import datetime
import importlib
import struct
from dataclasses import dataclass

import pyarrow as pa
from vastdb.vast_flatbuf.org.apache.arrow.computeir.flatbuf import (
    Call,
    Deref,
    ExpressionImpl,
    FieldIndex,
    FieldRef,
    Literal,
    LiteralImpl,
    Relation,
    RelationImpl,
    Source,
)
from vastdb.vast_flatbuf.org.apache.arrow.flatbuf import FixedSizeList, FloatingPoint, Int, Timestamp, TimeUnit, Type

from .catalog import quote_ident
from .errors import ApiError

COMPLETED_STREAM_ID = 0xFFFFFFFF - 1
_IR = "vastdb.vast_flatbuf.org.apache.arrow.computeir.flatbuf"
EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"


def _names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if isinstance(v, int)}


_TYPE = _names(Type.Type)
_UNIT = _names(TimeUnit.TimeUnit)
_EXPR = _names(ExpressionImpl.ExpressionImpl)
_LIT = _names(LiteralImpl.LiteralImpl)


def _union(table, cls):
    obj = cls()
    obj.Init(table.Bytes, table.Pos)
    return obj


def _field_type(field) -> dict:
    kind = _TYPE.get(field.TypeType(), str(field.TypeType()))
    out: dict = {"id": kind}
    tab = field.Type()
    if kind == "Int":
        t = _union(tab, Int.Int)
        out |= {"bit_width": t.BitWidth(), "signed": bool(t.IsSigned())}
    elif kind == "FloatingPoint":
        out["precision"] = _union(tab, FloatingPoint.FloatingPoint).Precision()
    elif kind == "Timestamp":
        t = _union(tab, Timestamp.Timestamp)
        out |= {"unit": _UNIT[t.Unit()], "timezone": (t.Timezone() or b"").decode() or None}
    elif kind == "FixedSizeList":
        out["list_size"] = _union(tab, FixedSizeList.FixedSizeList).ListSize()
    return out


def _field(field) -> dict:
    return {
        "name": (field.Name() or b"").decode(),
        "nullable": bool(field.Nullable()),
        "type": _field_type(field),
        "children": [_field(field.Children(i)) for i in range(field.ChildrenLength())],
    }


# Literal kinds the twin evaluates; each generated class has a `Value()` accessor.
_LITERAL_CLASSES = {
    kind: getattr(importlib.import_module(f"{_IR}.{kind}"), kind)
    for kind in (
        "BooleanLiteral",
        "Int8Literal",
        "Int16Literal",
        "Int32Literal",
        "Int64Literal",
        "UInt8Literal",
        "UInt16Literal",
        "UInt32Literal",
        "UInt64Literal",
        "Float32Literal",
        "Float64Literal",
        "StringLiteral",
        "TimestampLiteral",
    )
}


def _literal(lit) -> dict:
    kind = _LIT.get(lit.ImplType(), str(lit.ImplType()))
    cls = _LITERAL_CLASSES.get(kind)
    if cls is None:
        raise ApiError(501, "NotImplemented", f"literal {kind}")
    value = _union(lit.Impl(), cls).Value()
    if isinstance(value, bytes):
        value = value.decode()
    return {"literal": value, "kind": kind, "type": _field_type(lit.Type()) if lit.Type() is not None else None}


def _expression(expr) -> dict:
    kind = _EXPR.get(expr.ImplType())
    impl = expr.Impl()
    if kind == "Call":
        call = _union(impl, Call.Call)
        return {
            "call": call.Name().decode(),
            "args": [_expression(call.Arguments(i)) for i in range(call.ArgumentsLength())],
        }
    if kind == "FieldRef":
        ref = _union(impl, FieldRef.FieldRef)
        if ref.RefType() != Deref.Deref.FieldIndex:
            raise ApiError(501, "NotImplemented", f"field reference kind {ref.RefType()}")
        return {"field": _union(ref.Ref(), FieldIndex.FieldIndex).Position()}
    if kind == "Literal":
        return _literal(_union(impl, Literal.Literal))
    raise ApiError(501, "NotImplemented", f"expression {kind}")


def decode_request(body: bytes) -> dict:
    """The QueryData request as plain data (also what the recorder writes)."""
    rel = Relation.Relation.GetRootAs(body, 0)
    if rel.ImplType() != RelationImpl.RelationImpl.Source:
        raise ApiError(501, "NotImplemented", f"relation kind {rel.ImplType()}")
    src = _union(rel.Impl(), Source.Source)
    schema = src.Schema()
    return {
        "source": (src.Name() or b"").decode(),
        "schema": [_field(schema.Fields(i)) for i in range(schema.FieldsLength())],
        "filter": _expression(src.Filter()) if src.Filter() is not None else None,
        "projection": [src.Projection(i).Position() for i in range(src.ProjectionLength())],
    }


@dataclass
class Plan:
    """What to run: projected columns and a WHERE clause with its parameters."""

    columns: list[str]
    where: str
    params: list


def _leaves(fields: list[dict]) -> tuple[dict[int, str], dict[int, str]]:
    """Depth-first positions as the SDK numbers them: position -> top-level column, for
    top-level scalar columns (predicates) and for every leaf (projections)."""
    scalar, leaf = {}, {}
    pos = 0

    def walk(f: dict, top: str) -> None:
        nonlocal pos
        me = pos
        pos += 1
        if not f["children"]:
            leaf[me] = top
        for c in f["children"]:
            walk(c, top)

    for f in fields:
        if not f["children"]:
            scalar[pos] = f["name"]
        walk(f, f["name"])
    return scalar, leaf


def _literal_param(lit: dict):
    value, kind = lit["literal"], lit["kind"]
    if kind == "TimestampLiteral":
        scale = {"SECOND": 1, "MILLISECOND": 10**3, "MICROSECOND": 10**6, "NANOSECOND": 10**9}[lit["type"]["unit"]]
        epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
        return epoch + datetime.timedelta(microseconds=value * 10**6 // scale)
    if kind in ("DateLiteral", "TimeLiteral", "DecimalLiteral", "Float16Literal", "BinaryLiteral"):
        raise ApiError(501, "NotImplemented", f"predicates on {kind}")
    return value


_BINARY = {"equal": "=", "not_equal": "<>", "greater": ">", "greater_equal": ">=", "less": "<", "less_equal": "<="}


def _is_equal_literal(expr: dict, column: dict) -> bool:
    return expr.get("call") == "equal" and expr["args"][0] == column and "literal" in expr["args"][1]


def _sql(expr: dict, columns: dict[int, str], params: list) -> str:
    if "field" in expr:
        name = columns.get(expr["field"])
        if name is None:
            raise ApiError(501, "NotImplemented", "predicates only on top-level scalar columns")
        return quote_ident(name)
    if "literal" in expr:
        params.append(_literal_param(expr))
        return "?"
    name, args = expr["call"], expr["args"]
    if name == "or" and len(args) > 1 and all(_is_equal_literal(a, args[0]["args"][0]) for a in args):
        # An `isin` set: one IN list instead of a chain of ORs.
        column = _sql(args[0]["args"][0], columns, params)
        return f"({column} IN ({', '.join(_sql(a['args'][1], columns, params) for a in args)}))"
    if name in ("and", "or"):
        if not args:
            return "TRUE" if name == "and" else "FALSE"
        return "(" + f" {name.upper()} ".join(_sql(a, columns, params) for a in args) + ")"
    if name in _BINARY and len(args) == 2:
        return f"({_sql(args[0], columns, params)} {_BINARY[name]} {_sql(args[1], columns, params)})"
    if name == "is_null" and len(args) == 1:
        return f"({_sql(args[0], columns, params)} IS NULL)"
    if name == "is_valid" and len(args) == 1:
        return f"({_sql(args[0], columns, params)} IS NOT NULL)"
    if name == "match_substring" and len(args) == 2:
        return f"contains({_sql(args[0], columns, params)}, {_sql(args[1], columns, params)})"
    raise ApiError(501, "NotImplemented", f"function {name}/{len(args)}")


def plan(request: dict) -> Plan:
    """Translate a decoded request into SQL over the table's columns."""
    scalar, leaf = _leaves(request["schema"])
    columns: list[str] = []
    for p in request["projection"]:
        name = leaf.get(p)
        if name is None:
            raise ApiError(400, "InvalidArgument", f"projection of unknown leaf {p}")
        if name not in columns:
            columns.append(name)
    params: list = []
    where = "TRUE" if request["filter"] is None else _sql(request["filter"], scalar, params)
    return Plan(columns, where, params)


def _chunk(stream_id: int, next_row_id: int, message: bytes) -> bytes:
    return struct.pack("<LQ", stream_id, next_row_id) + message


def encode_stream(stream_id: int, next_row_id: int, rows: pa.Table) -> bytes:
    """One sub-split's rows, a column at a time, each its own Arrow IPC stream."""
    out = bytearray()
    if rows.num_columns == 0:
        # An empty projection: one stream without columns carrying the row count.
        columns = [(pa.schema([]), pa.record_batch([pa.nulls(rows.num_rows)], names=["n"]).select([]))]
    else:
        columns = []
        for field, col in zip(rows.schema, rows.columns, strict=True):
            schema = pa.schema([field])
            columns.append((schema, pa.record_batch([col.combine_chunks()], schema=schema)))
    for schema, batch in columns:
        out += _chunk(stream_id, next_row_id, schema.serialize().to_pybytes())
        out += _chunk(stream_id, next_row_id, batch.serialize().to_pybytes())
        out += _chunk(stream_id, next_row_id, EOS)
    return bytes(out)


def completed() -> bytes:
    """The marker ending a QueryData response."""
    return struct.pack("<L", COMPLETED_STREAM_ID)
