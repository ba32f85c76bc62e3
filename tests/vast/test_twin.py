"""VAST's official Python SDK (`vastdb`, pinned) drives the protocol twin: the twin is judged by
VAST's own client, so the Rust sink can later be judged by the twin.
"""

from __future__ import annotations

import time

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import reference
import vastdb
import vastdb.errors
from catalog_rows import rows, source_uri
from catalog_schema import TABLES
from conftest import ACCESS, BUCKET, SECRET, Twin

SCHEMA = "exrscan"
SHARD = "shard-0"  # nested: "exrscan/shard-0"


def create_catalog(tx) -> dict:
    """Schema exrscan/shard-0 with the four catalog tables; returns name -> table."""
    top = tx.bucket(BUCKET).create_schema(SCHEMA)
    shard = top.create_schema(SHARD)
    return {name: shard.create_table(name, schema) for name, schema in TABLES.items()}


def tables(tx) -> dict:
    shard = tx.bucket(BUCKET).schema(SCHEMA).schema(SHARD)
    return {name: shard.table(name) for name in TABLES}


def insert_files(tx, n: int, tag: str, write_id: str) -> dict[str, pa.Table]:
    """One batch into all four tables, as the sink writes it."""
    batch = {name: rows(schema, n, tag, write_id) for name, schema in TABLES.items()}
    for name, t in tables(tx).items():
        ids = t.insert(batch[name])
        assert len(ids) == n
    return batch


def read(t, **kw) -> pa.Table:
    return t.select(**kw).read_all()


def sorted_by(table: pa.Table, *keys: str) -> pa.Table:
    return table.sort_by([(k, "ascending") for k in keys])


def test_connect_checks_credentials(twin: Twin):
    session = twin.session()
    assert session.api.vast_version[:2] == (5, 4)
    with session.transaction() as tx:
        assert tx.bucket(BUCKET).name == BUCKET
        with pytest.raises(vastdb.errors.MissingBucket):
            tx.bucket("no-such-bucket")
    with pytest.raises(vastdb.errors.Forbidden, match="SignatureDoesNotMatch"):
        twin.session(secret=SECRET + "x")
    with pytest.raises(vastdb.errors.Forbidden, match="InvalidAccessKeyId"):
        twin.session(access=ACCESS + "x")


def test_catalog_tables_keep_their_arrow_types(twin: Twin):
    with twin.session().transaction() as tx:
        create_catalog(tx)
    with twin.session().transaction() as tx:
        bucket = tx.bucket(BUCKET)
        assert [s.name for s in bucket.schemas()] == [SCHEMA]
        assert [s.name for s in bucket.schema(SCHEMA).schemas()] == [f"{SCHEMA}/{SHARD}"]
        shard = bucket.schema(SCHEMA).schema(SHARD)
        assert sorted(shard.tablenames()) == sorted(TABLES)
        for name, t in tables(tx).items():
            assert t.arrow_schema == TABLES[name], name
        with pytest.raises(vastdb.errors.TableExists):
            shard.create_table("files", TABLES["files"])


def test_insert_then_read_back_all_four_tables(twin: Twin):
    with twin.session().transaction() as tx:
        create_catalog(tx)
        written = insert_files(tx, 40, "a", "w1")
    with twin.session().transaction() as tx:
        for name, t in tables(tx).items():
            got = read(t)
            assert sorted_by(got, "file_id") == sorted_by(written[name], "file_id"), name
            assert t.stats.num_rows == 40


def test_select_pushes_in_set_predicates_and_projections_to_the_twin(twin: Twin):
    with twin.session().transaction() as tx:
        create_catalog(tx)
        written = insert_files(tx, 300, "b", "w1")["files"]
    wanted = ["b-00007", "b-00150", "b-00299", "not-there"]
    uris = [source_uri("b", 3), source_uri("b", 4)]
    with twin.session().transaction() as tx:
        files = tables(tx)["files"]
        got = read(files, columns=["file_id", "write_id"], predicate=files["file_id"].isin(wanted))
        assert got.schema.names == ["file_id", "write_id"]
        assert sorted(got["file_id"].to_pylist()) == wanted[:3]
        got = read(
            files,
            columns=["file_id", "source_uri", "metadata_embedding", "last_modified"],
            predicate=files["source_uri"].isin(uris),
        )
        expected = written.filter(pc.is_in(written["source_uri"], pa.array(uris))).select(got.schema.names)
        assert sorted_by(got, "file_id") == sorted_by(expected, "file_id")
        # Combined with AND, and a comparison the SDK also pushes down.
        got = read(
            files, columns=["file_id"], predicate=files["file_id"].isin(wanted) & (files["size_bytes"] > 7 * 100)
        )
        assert sorted(got["file_id"].to_pylist()) == ["b-00150", "b-00299"]
        # An existence check needs no columns at all: only the count of matches comes back.
        assert read(files, columns=[], predicate=files["file_id"].isin(wanted)).num_rows == 3
    # The twin filtered server-side: each query shipped only the matching rows.
    shipped = [r["rows_sent"] for r in twin.records() if r["query"] == [["data", ""]]]
    assert shipped == [3, 2, 2, 3], shipped


def test_select_row_ids_then_delete_by_row_id(twin: Twin):
    """What the sink's garbage collection does: read `$row_id` with the rows, delete some by id."""
    with twin.session().transaction() as tx:
        create_catalog(tx)
        insert_files(tx, 20, "d", "w1")
    doomed = ["d-00003", "d-00011", "d-00019"]
    with twin.session().transaction() as tx:
        files = tables(tx)["files"]
        got = read(files, columns=["file_id", "write_id"], predicate=files["file_id"].isin(doomed), internal_row_id=True)
        assert got.schema.names == ["file_id", "write_id", "$row_id"]
        assert got.schema.field("$row_id").type == pa.uint64()
        assert sorted(got["file_id"].to_pylist()) == doomed
        files.delete(got.select(["$row_id"]))
    with twin.session().transaction() as tx:
        left = read(tables(tx)["files"], columns=["file_id"])["file_id"].to_pylist()
        assert len(left) == 17 and not set(doomed) & set(left)
    deletes = [r for r in twin.records() if r["method"] == "DELETE" and r["query"] == [["rows", ""]]]
    assert [r["rows_deleted"] for r in deletes] == [3], deletes
    assert deletes[0]["body"]["arrow"]["schema"][0]["name"] == "$row_id"


def test_rolled_back_insert_is_invisible(twin: Twin):
    with twin.session().transaction() as tx:
        create_catalog(tx)
    with pytest.raises(RuntimeError, match="sink failed"):
        with twin.session().transaction() as tx:
            insert_files(tx, 10, "c", "w-rolled-back")
            raise RuntimeError("sink failed")
    with twin.session().transaction() as tx:
        for name, t in tables(tx).items():
            assert read(t).num_rows == 0, name
    records = twin.records()
    assert any(r["method"] == "DELETE" and r["query"] == [["transaction", ""]] for r in records)


def test_uncommitted_rows_are_seen_only_by_their_transaction(twin: Twin):
    with twin.session().transaction() as tx:
        create_catalog(tx)
    writer, reader = twin.session(), twin.session()
    with writer.transaction() as wtx:
        insert_files(wtx, 5, "d", "w1")
        assert read(tables(wtx)["files"]).num_rows == 5
        with reader.transaction() as rtx:
            assert read(tables(rtx)["files"]).num_rows == 0
    with reader.transaction() as rtx:
        assert read(tables(rtx)["files"]).num_rows == 5


def test_concurrent_writers_both_commit(twin: Twin):
    """Shards write the same tables at once: interleaved transactions, both land."""
    with twin.session().transaction() as tx:
        create_catalog(tx)
    first, second = twin.session().transaction(), twin.session().transaction()
    first.__enter__()
    second.__enter__()
    insert_files(first, 4, "s1", "w-s1")
    insert_files(second, 6, "s2", "w-s2")
    first.__exit__(None, None, None)
    second.__exit__(None, None, None)
    with twin.session().transaction() as tx:
        got = read(tables(tx)["attributes"], columns=["write_id"])
        assert sorted(got["write_id"].to_pylist()) == ["w-s1"] * 4 + ["w-s2"] * 6


def test_idle_transaction_is_rolled_back(tmp_path):
    twin = Twin(tmp_path, tx_timeout=1.0, record=tmp_path / "r.jsonl")
    twin.start()
    try:
        with twin.session().transaction() as tx:
            create_catalog(tx)
        tx = twin.session().transaction()
        tx.__enter__()
        insert_files(tx, 5, "e", "w-idle")
        time.sleep(3)
        with pytest.raises(vastdb.errors.NotFound, match="TabularTransactionNotFound"):
            tx.__exit__(None, None, None)
        with twin.session().transaction() as tx:
            assert read(tables(tx)["files"]).num_rows == 0
    finally:
        twin.stop()


def test_restarted_twin_keeps_committed_rows_only(twin: Twin):
    with twin.session().transaction() as tx:
        create_catalog(tx)
        insert_files(tx, 20, "f", "w-committed")
    open_tx = twin.session().transaction()
    open_tx.__enter__()
    insert_files(open_tx, 7, "g", "w-open")
    twin.kill()
    twin.start()
    with twin.session().transaction() as tx:
        got = read(tables(tx)["files"], columns=["file_id", "write_id"])
        assert got.num_rows == 20
        assert set(got["write_id"].to_pylist()) == {"w-committed"}
        # New inserts after the restart get fresh row ids, and land.
        insert_files(tx, 3, "h", "w-after")
    with twin.session().transaction() as tx:
        assert read(tables(tx)["channels"]).num_rows == 23


def test_large_batch_is_split_into_insert_and_update(twin: Twin):
    """Over ~5 MiB the SDK inserts some columns, then sets the rest by `$row_id` (PUT ?rows)."""
    with twin.session().transaction() as tx:
        create_catalog(tx)
        written = rows(TABLES["files"], 3000, "l", "w-big")
        tables(tx)["files"].insert(written)
    with twin.session().transaction() as tx:
        assert sorted_by(read(tables(tx)["files"]), "file_id") == sorted_by(written, "file_id")
    methods = [r["method"] for r in twin.records() if r["query"] == [["rows", ""]]]
    assert methods[0] == "POST" and "PUT" in methods, methods


def test_drop_tables_and_schemas(twin: Twin):
    with twin.session().transaction() as tx:
        create_catalog(tx)
    with twin.session().transaction() as tx:
        shard = tx.bucket(BUCKET).schema(SCHEMA).schema(SHARD)
        with pytest.raises(vastdb.errors.Conflict, match="TabularSchemaNotEmpty"):
            shard.drop()
    with twin.session().transaction() as tx:
        shard = tx.bucket(BUCKET).schema(SCHEMA).schema(SHARD)
        for t in shard.tables():
            t.drop()
        assert shard.tablenames() == []
        shard.drop()
        tx.bucket(BUCKET).schema(SCHEMA).drop()
        assert tx.bucket(BUCKET).schemas() == []


def test_recording_holds_decoded_requests(twin: Twin):
    with twin.session().transaction() as tx:
        create_catalog(tx)
        insert_files(tx, 2, "r", "w-rec")
        files = tables(tx)["files"]
        read(files, columns=["file_id"], predicate=files["file_id"].isin(["r-00001"]))
    records = twin.records()
    for r in records:
        assert "authorization" not in r["headers"] and "x-amz-date" not in r["headers"]
    probe = records[0]
    assert (probe["method"], probe["path"], probe["headers"]["tabular-get-vast-version"]) == ("GET", "/", "true")
    create = next(
        r for r in records if r["method"] == "POST" and r["path"].endswith("/files") and r["query"] == [["table", ""]]
    )
    embedding = next(f for f in create["body"]["arrow_schema"] if f["name"] == "metadata_embedding")
    assert embedding["type"] == "fixed_size_list<item: float not null>[384]"
    insert = next(r for r in records if r["query"] == [["rows", ""]] and r["path"].endswith("/parts"))
    assert [row["file_id"] for row in insert["body"]["arrow"]["rows"]] == ["r-00000", "r-00001"]
    assert insert["headers"]["tabular-txid"] != "0"
    query = next(r for r in records if r["query"] == [["data", ""]])
    body = query["body"]["query_data"]
    assert body["projection"] == [0]
    assert body["filter"] == {
        "call": "and",
        "args": [
            {
                "call": "or",
                "args": [
                    {
                        "call": "equal",
                        "args": [{"field": 0}, {"literal": "r-00001", "kind": "StringLiteral", "type": {"id": "Utf8"}}],
                    }
                ],
            }
        ],
    }


def test_reference_run_is_recorded_for_conformance(twin: Twin):
    """reference.py, the SDK side of a later request-conformance test, runs and is recorded."""
    reference.run(twin.endpoint, ACCESS, SECRET, BUCKET, "shard-7", files=3)
    ops = [(r["method"], r["query"][0][0] if r["query"] else "", r["status"]) for r in twin.records()]
    assert all(status == 200 for *_, status in ops), ops
    counts = {op: sum(1 for m, c, _ in ops if (m, c) == op) for op in set((m, c) for m, c, _ in ops)}
    assert counts[("POST", "table")] == 4
    assert counts[("POST", "rows")] == 4
    inserted = [r["path"].rsplit("/", 1)[1] for r in twin.records() if r["query"] == [["rows", ""]]]
    assert inserted == ["parts", "channels", "attributes", "files"], "child tables first, files last"
    assert counts[("GET", "data")] == 2
    assert counts[("PUT", "transaction")] == 4
    with twin.session().transaction() as tx:
        files = tx.bucket(BUCKET).schema("exrscan").schema("shard-7").table("files")
        assert read(files, columns=["write_id"]).num_rows == 3
