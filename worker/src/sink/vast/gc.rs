//! Garbage collection on VAST: the rows the canonical-rows SQL hides
//! ([`canonical::gc_statements`](crate::sink::canonical::gc_statements)), computed client-side
//! from `(file_id, write_id, $row_id)` selects and deleted by row id — VAST's tabular API has
//! no `DELETE … WHERE`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, UInt64Type};
use reqwest::Method;

use super::client::Call;
use super::query::{Filter, ROW_ID};
use super::{NARROW_LIMIT_ROWS, VastSink, messages, text};
use crate::catalog::schema::WRITE_ID;
use crate::catalog::{Table, WriteId};
use crate::sink::SinkError;
use crate::sink::canonical::GcCounts;

/// `(file_id, write_id, $row_id)` of a table's rows.
type RowKeys = Vec<(String, String, u64)>;

/// Row ids a delete request carries at most (8 bytes each: far below a request's limit).
const ROW_IDS_PER_DELETE: usize = 256 * 1024;

impl VastSink {
    /// `(file_id, write_id, $row_id)` of every row of `table`.
    async fn row_keys(&self, txid: u64, table: Table) -> Result<RowKeys, SinkError> {
        let columns = ["file_id", WRITE_ID, ROW_ID];
        let select = self.select(table, &columns, Filter::All, NARROW_LIMIT_ROWS);
        let mut keys = Vec::new();
        let mut bad = None;
        select
            .run(&self.client, txid, |batch| {
                let (ids, writes) = match (text(batch, 0), text(batch, 1)) {
                    (Ok(ids), Ok(writes)) => (ids, writes),
                    (Err(e), _) | (_, Err(e)) => return bad = Some(e),
                };
                let Some(rows) = batch.column(2).as_primitive_opt::<UInt64Type>() else {
                    return bad =
                        Some(SinkError::Schema(format!("$row_id comes back as {}", batch.column(2).data_type())));
                };
                for row in 0..batch.num_rows() {
                    if ids.is_valid(row) && writes.is_valid(row) && rows.is_valid(row) {
                        keys.push((ids.value(row).to_string(), writes.value(row).to_string(), rows.value(row)));
                    }
                }
            })
            .await?;
        bad.map_or(Ok(keys), Err)
    }

    /// Deletes rows of `table` by row id, in ascending order as the SDK sends them.
    async fn delete_rows(&self, txid: u64, table: Table, mut row_ids: Vec<u64>) -> Result<u64, SinkError> {
        row_ids.sort_unstable();
        let path = self.options.table_path(&self.options.table_name(table));
        let schema = Arc::new(Schema::new(vec![Field::new(ROW_ID, DataType::UInt64, true)]));
        for chunk in row_ids.chunks(ROW_IDS_PER_DELETE) {
            let ids: ArrayRef = Arc::new(UInt64Array::from(chunk.to_vec()));
            let batch = RecordBatch::try_new(schema.clone(), vec![ids])
                .map_err(|e| SinkError::Failed(format!("row ids to delete: {e}")))?;
            let body = messages::ipc_stream(&batch)?;
            self.client.send(Call::new(Method::DELETE, path.clone(), "rows", txid).body(body)).await?;
        }
        Ok(row_ids.len() as u64)
    }

    /// One collection in transaction `txid`: child tables first, `files` last.
    pub(super) async fn collect_garbage_in(
        &mut self,
        txid: u64,
        orphans_before: &WriteId,
    ) -> Result<GcCounts, SinkError> {
        let files = self.row_keys(txid, Table::Files).await?;
        // A file's canonical write id: the smallest with a `files` row.
        let mut canonical: HashMap<&str, &str> = HashMap::new();
        for (file_id, write_id, _) in &files {
            let best = canonical.entry(file_id).or_insert(write_id);
            if write_id.as_str() < *best {
                *best = write_id;
            }
        }
        let written: HashSet<(&str, &str)> = files.iter().map(|(f, w, _)| (f.as_str(), w.as_str())).collect();
        let mut counts = GcCounts::default();
        for child in [Table::Parts, Table::Channels, Table::Attributes] {
            let rows = self.row_keys(txid, child).await?;
            // Not canonical, and either an old orphan or a copy whose `files` row exists.
            let doomed: Vec<u64> = rows
                .iter()
                .filter(|(file_id, write_id, _)| {
                    canonical.get(file_id.as_str()) != Some(&write_id.as_str())
                        && (write_id.as_str() < orphans_before.as_str()
                            || written.contains(&(file_id.as_str(), write_id.as_str())))
                })
                .map(|(_, _, row)| *row)
                .collect();
            counts.add(child, self.delete_rows(txid, child, doomed).await?);
        }
        let doomed: Vec<u64> = files
            .iter()
            .filter(|(file_id, write_id, _)| {
                canonical.get(file_id.as_str()).is_some_and(|best| *best < write_id.as_str())
            })
            .map(|(_, _, row)| *row)
            .collect();
        counts.add(Table::Files, self.delete_rows(txid, Table::Files, doomed).await?);
        Ok(counts)
    }
}
