"""The four catalog tables as Arrow schemas, transcribed from `worker/src/catalog/schema.rs`, plus
the `write_id` column the VAST sink adds to every table (VAST has no unique keys; a write's id
lets a reader tell a committed batch from a retried one). Keep in step with the Rust source.
"""

import pyarrow as pa

METADATA_DIMS = 384
CHANNEL_DIMS = 128

TIMESTAMP = pa.timestamp("us", tz="UTC")


def vector(dims: int) -> pa.DataType:
    """FixedSizeList<Float32> with non-null items: how VAST stores vectors (its SDK refuses nullable items)."""
    return pa.list_(pa.field("item", pa.float32(), nullable=False), dims)


def _text(name, nullable=False):
    return pa.field(name, pa.utf8(), nullable)


def _int32(name):
    return pa.field(name, pa.int32(), False)


def _flag(name):
    return pa.field(name, pa.bool_(), False)


WRITE_ID = _text("write_id")

FILES = pa.schema(
    [
        _text("file_id"),
        _text("source_uri"),
        _text("bucket", True),
        _text("key"),
        pa.field("size_bytes", pa.int64(), False),
        pa.field("last_modified", TIMESTAMP, True),
        _text("etag", True),
        pa.field("header_bytes", pa.int64(), False),
        _text("header_hash"),
        _int32("version"),
        pa.field("frame_number", pa.int64(), True),
        _int32("part_count"),
        _int32("channel_count"),
        _flag("multipart"),
        _flag("deep"),
        _flag("tiled"),
        _flag("multiview"),
        _flag("long_names"),
        pa.field("metadata_embedding", vector(METADATA_DIMS), True),
        pa.field("channel_fingerprint", vector(CHANNEL_DIMS), True),
        _text("scan_name", True),
        _text("scan_uid", True),
        pa.field("inspected_at", TIMESTAMP, False),
        _text("raw_header_json"),
        WRITE_ID,
    ]
)

_WINDOWS = [
    pa.field(f"{w}_{c}", pa.int32(), True)
    for w in ("data_window", "display_window")
    for c in ("min_x", "min_y", "max_x", "max_y")
]

PARTS = pa.schema(
    [
        _text("file_id"),
        _int32("part_index"),
        _text("name", True),
        _text("view", True),
        _text("type"),
        _text("compression", True),
        *_WINDOWS,
        pa.field("width", pa.int64(), True),
        pa.field("height", pa.int64(), True),
        pa.field("pixel_aspect_ratio", pa.float32(), True),
        _text("line_order", True),
        pa.field("tile_x_size", pa.int64(), True),
        pa.field("tile_y_size", pa.int64(), True),
        _text("tile_level_mode", True),
        _text("tile_rounding_mode", True),
        _int32("channel_count"),
        _int32("attribute_count"),
        WRITE_ID,
    ]
)

CHANNELS = pa.schema(
    [
        _text("file_id"),
        _int32("part_index"),
        _int32("channel_index"),
        _text("name"),
        _text("layer", True),
        _text("component"),
        _text("type"),
        _int32("x_sampling"),
        _int32("y_sampling"),
        _flag("p_linear"),
        pa.field("channel_fingerprint", vector(CHANNEL_DIMS), True),
        WRITE_ID,
    ]
)

ATTRIBUTES = pa.schema(
    [
        _text("file_id"),
        _int32("part_index"),
        _text("name"),
        _text("type"),
        _text("value_json"),
        _text("value_text", True),
        pa.field("value_int", pa.int64(), True),
        pa.field("value_float", pa.float64(), True),
        WRITE_ID,
    ]
)

TABLES = {"files": FILES, "parts": PARTS, "channels": CHANNELS, "attributes": ATTRIBUTES}
