//! VAST DataBase natively: the tabular API that VAST's own SDK speaks (SigV4-signed HTTP,
//! flatbuffer and Arrow IPC bodies), learned from the SDK's source (`docs/vast-protocol.md`).
//!
//! On connect the sink probes the server's version, then, in one transaction, creates the
//! schema (each level of a nested path) and the four tables when missing and checks the
//! columns of those that exist. A batch is one transaction: inserts into the child tables,
//! then `files`, then commit. The existence and resume checks are QueryData selects with
//! the `IN` set pushed down as a predicate, never a scan. VAST has no views and no unique
//! keys: readers use the canonical-rows SQL of `docs/queries.md`, and garbage collection
//! computes the same rows client-side from `(file_id, write_id, $row_id)` selects, then
//! deletes the others by row id ([`canonical`](super::canonical) has the SQL it mirrors).

mod check;
mod client;
mod gc;
mod messages;
mod options;
mod query;
mod sigv4;

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Float32Type, Int64Type, Schema};
use reqwest::Method;

pub use options::{Credentials, VastOptions};

use self::client::{Call, Client, MAX_REQUEST_BYTES, is_exists};
use self::query::{Filter, Select};
use super::canonical::GcCounts;
use super::lookup::{INDEXED_COLUMNS, IndexedQuery};
use super::similar::{Newest, TopK};
use super::{IndexedFile, Neighbour, SimilarBy, Sink, SinkError, Stored};
use crate::catalog::{CatalogBatch, SourceFile, Table, WriteId};

/// `file_id`s or URIs per existence or resume query (keeps a request far below 5 MiB).
const VALUES_PER_QUERY: usize = 1000;
/// Rows per sub-split of a narrow select (the SDK's default).
const NARROW_LIMIT_ROWS: u32 = 128 * 1024;
/// Rows per sub-split of a select of vectors: bounds one answer to a few tens of MiB.
const VECTOR_LIMIT_ROWS: u32 = 4096;
/// Insert bodies are split by rows below this size.
const INSERT_BYTES: usize = MAX_REQUEST_BYTES * 9 / 10;
/// The largest row the sink writes: one row and its stream's schema fit an insert body.
const MAX_ROW_BYTES: usize = 4 << 20;

/// A connected `vast://` sink.
pub struct VastSink {
    options: VastOptions,
    client: Client,
    /// The transaction of a write that did not end (its future was dropped at the
    /// deadline): rolled back by [`Sink::recover`].
    unended: Option<u64>,
}

/// `op` bounded by `deadline`: past it, a transient error.
async fn within<T>(deadline: Duration, op: impl Future<Output = Result<T, SinkError>>) -> Result<T, SinkError> {
    tokio::time::timeout(deadline, op)
        .await
        .unwrap_or_else(|_| Err(SinkError::Transient(format!("no answer from the server within {deadline:?}"))))
}

impl VastSink {
    /// Probes the server, then creates the schema and tables if missing and checks them.
    pub async fn connect(options: VastOptions, credentials: Credentials) -> Result<Self, SinkError> {
        let client = Client::new(&options, credentials)?;
        let mut sink = Self { options, client, unended: None };
        within(sink.options.timeout, async {
            let version = sink.client.version().await?;
            tracing::info!(%version, endpoint = %sink.options.endpoint(), bucket = %sink.options.bucket,
                schema = %sink.options.schema, "connected to VAST DataBase");
            let txid = sink.begin().await?;
            let result = sink.ensure_catalog(txid).await;
            sink.end(txid, result).await
        })
        .await?;
        Ok(sink)
    }

    /// Begins the transaction of one operation.
    async fn begin(&mut self) -> Result<u64, SinkError> {
        let txid = self.client.begin().await?;
        self.unended = Some(txid);
        Ok(txid)
    }

    /// Ends `txid`: commits when `result` is a success, else rolls back.
    async fn end<T>(&mut self, txid: u64, result: Result<T, SinkError>) -> Result<T, SinkError> {
        let ended = match result {
            Ok(value) => self.client.commit(txid).await.map(|()| value),
            Err(error) => {
                if let Err(e) = self.client.rollback(txid).await {
                    tracing::debug!(error = %e, "rolling back after a failed operation");
                }
                Err(error)
            }
        };
        self.unended = None;
        ended
    }

    fn listing(&self, path: String, command: &'static str, name: &str, txid: u64) -> Call {
        Call::new(Method::GET, path, command, txid)
            .header("tabular-max-keys", "1000")
            .header("tabular-next-key", "0")
            .header("tabular-name-exact-match", name)
            .header("tabular-list-count-only", "False")
    }

    /// Creates each level of the schema path and the four tables when missing; checks the
    /// columns of tables that exist.
    async fn ensure_catalog(&mut self, txid: u64) -> Result<(), SinkError> {
        let bucket = &self.options.bucket;
        let levels: Vec<&str> = self.options.schema.split('/').collect();
        for depth in 0..levels.len() {
            let parent = levels[..depth].iter().map(|l| format!("/{l}")).collect::<String>();
            let listing = self.listing(format!("/{bucket}{parent}"), "schema", levels[depth], txid);
            let names = messages::schema_names(&self.client.send(listing).await?.body)?;
            if !names.iter().any(|n| n == levels[depth]) {
                let path = format!("/{bucket}{parent}/{}", levels[depth]);
                let create = Call::new(Method::POST, path, "schema", txid).body(messages::create_schema());
                let schema = levels[..=depth].join("/");
                match self.client.send(create).await {
                    Ok(_) => tracing::info!(%bucket, %schema, "created the schema"),
                    Err(e) if is_exists(&e) => tracing::debug!(%bucket, %schema, "another writer created the schema"),
                    Err(e) => return Err(e),
                }
            }
        }
        for table in Table::ALL {
            self.ensure_table(table, txid).await?;
        }
        Ok(())
    }

    async fn ensure_table(&mut self, table: Table, txid: u64) -> Result<(), SinkError> {
        let name = self.options.table_name(table);
        let schema_path = format!("/{}/{}", self.options.bucket, self.options.schema);
        let listing = self.listing(schema_path, "table", &name, txid).header("tabular-include-list-stats", "False");
        let exists = messages::table_names(&self.client.send(listing).await?.body)?.contains(&name);
        let path = self.options.table_path(&name);
        if !exists {
            let body = messages::schema_message(&table.schema())?;
            match self.client.send(Call::new(Method::POST, path, "table", txid).body(body)).await {
                Ok(_) => tracing::info!(table = %name, "created the table"),
                Err(e) if is_exists(&e) => tracing::debug!(table = %name, "another writer created the table"),
                Err(e) => return Err(e),
            }
            return Ok(());
        }
        let columns = Call::new(Method::GET, path, "column", txid)
            .header("tabular-max-keys", "10000")
            .header("tabular-next-key", "0")
            .header("tabular-list-count-only", "False");
        let found = messages::stream_schema(&self.client.send(columns).await?.body)?;
        check_columns(&name, &table.schema(), &found)
    }

    fn select<'a>(&self, table: Table, columns: &'a [&'a str], filter: Filter<'a>, limit_rows: u32) -> Select<'a> {
        let path = self.options.table_path(&self.options.table_name(table));
        Select { table: table.schema(), path, columns, filter, limit_rows }
    }
}

/// Whether the columns VAST reports for `name` are the catalog's (names and types in
/// order; time zones, which VAST may not keep, and field metadata aside).
fn check_columns(name: &str, want: &Schema, found: &Schema) -> Result<(), SinkError> {
    fn plain(t: &DataType) -> DataType {
        match t {
            DataType::Timestamp(unit, _) => DataType::Timestamp(*unit, None),
            DataType::FixedSizeList(item, n) => {
                DataType::FixedSizeList(Arc::new(Field::new("item", plain(item.data_type()), item.is_nullable())), *n)
            }
            other => other.clone(),
        }
    }
    let describe = |s: &Schema| -> Vec<(String, DataType)> {
        s.fields().iter().map(|f| (f.name().clone(), plain(f.data_type()))).collect()
    };
    if describe(want) != describe(found) {
        let names =
            |s: &Schema| s.fields().iter().map(|f| format!("{} {}", f.name(), f.data_type())).collect::<Vec<_>>();
        return Err(SinkError::Schema(format!(
            "table {name} has columns [{}], expected [{}]; drop it or use another schema or table_prefix",
            names(found).join(", "),
            names(want).join(", ")
        )));
    }
    Ok(())
}

/// Bodies of an insert of `rows`, split by rows so that each stays below [`INSERT_BYTES`].
fn insert_bodies(rows: &RecordBatch, out: &mut Vec<Vec<u8>>) -> Result<(), SinkError> {
    let body = messages::ipc_stream(rows)?;
    if body.len() <= INSERT_BYTES || rows.num_rows() <= 1 {
        out.push(body);
        return Ok(());
    }
    let half = rows.num_rows() / 2;
    insert_bodies(&rows.slice(0, half), out)?;
    insert_bodies(&rows.slice(half, rows.num_rows() - half), out)
}

/// The text column `index` of `batch`.
fn text(batch: &RecordBatch, index: usize) -> Result<&StringArray, SinkError> {
    batch.column(index).as_string_opt::<i32>().ok_or_else(|| {
        SinkError::Schema(format!(
            "{} comes back as {}",
            batch.schema().field(index).name(),
            batch.column(index).data_type()
        ))
    })
}

impl VastSink {
    async fn existing_in(&mut self, txid: u64, ids: &[String]) -> Result<HashSet<String>, SinkError> {
        let mut found = HashSet::new();
        for chunk in ids.chunks(VALUES_PER_QUERY) {
            let values: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let select = self.select(Table::Files, &["file_id"], Filter::In("file_id", &values), NARROW_LIMIT_ROWS);
            let mut bad = None;
            select
                .run(&self.client, txid, |batch| match text(batch, 0) {
                    Ok(ids) => found.extend(ids.iter().flatten().map(str::to_owned)),
                    Err(e) => bad = Some(e),
                })
                .await?;
            if let Some(e) = bad {
                return Err(e);
            }
        }
        Ok(found)
    }

    async fn indexed_in(&mut self, txid: u64, files: &[SourceFile]) -> Result<HashSet<String>, SinkError> {
        let query = IndexedQuery::new(files);
        let mut found = HashSet::new();
        for chunk in query.uris().chunks(VALUES_PER_QUERY) {
            let select =
                self.select(Table::Files, &INDEXED_COLUMNS, Filter::In("source_uri", chunk), NARROW_LIMIT_ROWS);
            let mut bad = None;
            select
                .run(&self.client, txid, |batch| {
                    if let Err(e) = query.collect(batch, &mut found) {
                        bad = Some(e);
                    }
                })
                .await?;
            if let Some(e) = bad {
                return Err(e);
            }
        }
        Ok(found)
    }

    async fn write_in(&mut self, txid: u64, batch: &CatalogBatch) -> Result<(), SinkError> {
        for table in Table::WRITE_ORDER {
            let rows = batch.table(table);
            if rows.num_rows() == 0 {
                continue;
            }
            let mut bodies = Vec::new();
            insert_bodies(rows, &mut bodies)?;
            let path = self.options.table_path(&self.options.table_name(table));
            for body in bodies {
                self.client.send(Call::new(Method::POST, path.clone(), "rows", txid).body(body)).await?;
            }
        }
        Ok(())
    }

    async fn stored_in(&mut self, txid: u64, by: SimilarBy, which: &IndexedFile) -> Result<Vec<Stored>, SinkError> {
        let columns = ["source_uri", "inspected_at", by.column()];
        let values = [which.value()];
        let select = self.select(Table::Files, &columns, Filter::In(which.column(), &values), VECTOR_LIMIT_ROWS);
        let mut newest = Newest::default();
        let mut bad = None;
        select
            .run(&self.client, txid, |batch| {
                if let Err(e) = newest.collect(batch) {
                    bad = Some(e);
                }
            })
            .await?;
        match bad {
            Some(e) => Err(e),
            None => Ok(newest.finish()),
        }
    }

    async fn similar_in(&mut self, txid: u64, by: SimilarBy, vector: &[f32], top: &mut TopK) -> Result<(), SinkError> {
        let column = by.column();
        let columns = ["file_id", "source_uri", "inspected_at", column];
        // Rows without the vector are skipped here: VAST's predicates take scalar columns.
        let select = self.select(Table::Files, &columns, Filter::All, VECTOR_LIMIT_ROWS);
        select
            .run(&self.client, txid, |batch| {
                let (Ok(ids), Ok(uris)) = (text(batch, 0), text(batch, 1)) else { return };
                let Ok(times) = arrow::compute::cast(batch.column(2), &DataType::Int64) else { return };
                let times = times.as_primitive::<Int64Type>();
                let Some(vectors) = batch.column(3).as_fixed_size_list_opt() else { return };
                for row in 0..batch.num_rows() {
                    if vectors.is_null(row) || ids.is_null(row) || uris.is_null(row) {
                        continue;
                    }
                    let stored = vectors.value(row);
                    let Some(stored) = stored.as_primitive_opt::<Float32Type>() else { continue };
                    if stored.len() == vector.len() {
                        top.offer(vector, ids.value(row), uris.value(row), times.value(row), stored.values());
                    }
                }
            })
            .await
    }
}

impl Sink for VastSink {
    async fn existing(&mut self, ids: &[String]) -> Result<HashSet<String>, SinkError> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        within(self.options.timeout, async {
            let txid = self.begin().await?;
            let result = self.existing_in(txid, ids).await;
            self.end(txid, result).await
        })
        .await
    }

    async fn write(&mut self, batch: &CatalogBatch) -> Result<(), SinkError> {
        within(self.options.timeout, async {
            let txid = self.begin().await?;
            let result = self.write_in(txid, batch).await;
            self.end(txid, result).await
        })
        .await
    }

    async fn indexed(&mut self, files: &[SourceFile]) -> Result<HashSet<String>, SinkError> {
        if IndexedQuery::new(files).uris().is_empty() {
            return Ok(HashSet::new());
        }
        within(self.options.timeout, async {
            let txid = self.begin().await?;
            let result = self.indexed_in(txid, files).await;
            self.end(txid, result).await
        })
        .await
    }

    fn max_row_bytes(&self) -> Option<usize> {
        Some(MAX_ROW_BYTES)
    }

    async fn recover(&mut self) -> Result<(), SinkError> {
        // HTTP keeps no session: only a transaction left open at a deadline needs ending.
        let Some(txid) = self.unended else { return Ok(()) };
        match within(self.options.timeout, self.client.rollback(txid)).await {
            // Ended now, or already by the server (restarted, or expired it).
            Ok(()) => self.unended = None,
            Err(e) if !e.is_transient() => self.unended = None,
            Err(e) => tracing::debug!(error = %e, "rolling back the transaction of an operation past its deadline"),
        }
        Ok(())
    }

    async fn collect_garbage(&mut self, orphans_before: &WriteId) -> Result<GcCounts, SinkError> {
        // A full pass over every table: no deadline of a batch write.
        let txid = self.begin().await?;
        let result = self.collect_garbage_in(txid, orphans_before).await;
        self.end(txid, result).await
    }

    async fn stored(&mut self, by: SimilarBy, which: &IndexedFile) -> Result<Vec<Stored>, SinkError> {
        let txid = self.begin().await?;
        let result = self.stored_in(txid, by, which).await;
        self.end(txid, result).await
    }

    async fn similar(
        &mut self,
        by: SimilarBy,
        vector: &[f32],
        k: usize,
        exclude_uri: Option<&str>,
    ) -> Result<Vec<Neighbour>, SinkError> {
        let mut top = TopK::default();
        let txid = self.begin().await?;
        let result = self.similar_in(txid, by, vector, &mut top).await;
        self.end(txid, result).await?;
        Ok(top.finish(k, exclude_uri))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_inserts_are_split_by_rows() -> Result<(), SinkError> {
        let text: arrow::array::ArrayRef = Arc::new(StringArray::from(vec!["x".repeat(1 << 20); 12]));
        let rows = RecordBatch::try_from_iter([("file_id", text)]).map_err(|e| SinkError::Failed(e.to_string()))?;
        let mut bodies = Vec::new();
        insert_bodies(&rows, &mut bodies)?;
        assert!(bodies.len() >= 3, "{}", bodies.len());
        assert!(bodies.iter().all(|b| b.len() <= INSERT_BYTES));
        Ok(())
    }

    #[test]
    fn column_check_ignores_zones_but_not_types() {
        let want = Table::Files.schema();
        assert!(check_columns("files", &want, &want).is_ok());
        let fields: Vec<Field> = want
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Timestamp(unit, _) => Field::new(f.name(), DataType::Timestamp(*unit, None), true),
                _ => f.as_ref().clone(),
            })
            .collect();
        assert!(check_columns("files", &want, &Schema::new(fields.clone())).is_ok());
        let mut wrong = fields;
        wrong[4] = Field::new("size_bytes", DataType::Utf8, false);
        let error = check_columns("files", &want, &Schema::new(wrong));
        assert!(matches!(&error, Err(SinkError::Schema(m)) if m.contains("size_bytes Utf8")), "{error:?}");
    }
}
