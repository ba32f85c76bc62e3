//! [`CatalogBatch`]: the rows of the four tables for a set of files, the unit a sink
//! writes atomically, every row tagged with the [`WriteId`] of the attempt that writes it.

use std::collections::HashSet;

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray};
use arrow::compute::filter_record_batch;
use arrow::error::ArrowError;

use super::CatalogError;
use super::schema::Table;
use super::write_id::WriteId;

/// Rows for the four tables covering a set of files: every row of `parts`, `channels`
/// and `attributes` belongs to a `file_id` of `files`.
#[derive(Debug, Clone)]
pub struct CatalogBatch {
    file_ids: Vec<String>,
    tables: [RecordBatch; 4],
}

impl CatalogBatch {
    /// Wraps four record batches (in [`Table::ALL`] order), checking their schemas.
    pub fn new(tables: [RecordBatch; 4]) -> Result<Self, CatalogError> {
        for (table, batch) in Table::ALL.iter().zip(&tables) {
            if batch.schema() != table.schema() {
                return Err(CatalogError::Schema(table.name()));
            }
        }
        let file_ids = file_id_column(&tables[0]).iter().flatten().map(str::to_owned).collect();
        Ok(Self { file_ids, tables })
    }

    /// An empty batch.
    pub fn empty() -> Self {
        Self { file_ids: Vec::new(), tables: Table::ALL.map(|t| RecordBatch::new_empty(t.schema())) }
    }

    /// The `file_id`s of the batch's files, in row order.
    pub fn file_ids(&self) -> &[String] {
        &self.file_ids
    }

    /// The rows of one table.
    pub fn table(&self, table: Table) -> &RecordBatch {
        &self.tables[table as usize]
    }

    /// Number of files.
    pub fn files(&self) -> usize {
        self.file_ids.len()
    }

    /// Whether the batch holds no file.
    pub fn is_empty(&self) -> bool {
        self.file_ids.is_empty()
    }

    /// Rows over all four tables.
    pub fn rows(&self) -> usize {
        self.tables.iter().map(RecordBatch::num_rows).sum()
    }

    /// Bytes of Arrow memory held by the batch.
    pub fn memory_size(&self) -> usize {
        self.tables.iter().map(RecordBatch::get_array_memory_size).sum()
    }

    /// The same rows tagged with `write_id` (the last column of every table): each write
    /// attempt stamps its own, so that rows a failed attempt left are told apart.
    pub fn stamped(&self, write_id: &WriteId) -> Result<Self, CatalogError> {
        let mut tables = self.tables.clone();
        for batch in &mut tables {
            let ids: ArrayRef =
                Arc::new(StringArray::from_iter_values(std::iter::repeat_n(write_id.as_str(), batch.num_rows())));
            let mut columns = batch.columns().to_vec();
            if let Some(last) = columns.last_mut() {
                *last = ids;
            }
            *batch = RecordBatch::try_new(batch.schema(), columns)?;
        }
        Ok(Self { file_ids: self.file_ids.clone(), tables })
    }

    /// The batch without the rows of the files in `ids`.
    pub fn without(&self, ids: &HashSet<String>) -> Result<Self, CatalogError> {
        if ids.is_empty() {
            return Ok(self.clone());
        }
        let keep = |batch: &RecordBatch| -> Result<RecordBatch, ArrowError> {
            let mask: BooleanArray =
                file_id_column(batch).iter().map(|id| Some(id.is_none_or(|id| !ids.contains(id)))).collect();
            filter_record_batch(batch, &mask)
        };
        let mut tables = Vec::with_capacity(4);
        for batch in &self.tables {
            tables.push(keep(batch)?);
        }
        let tables: [RecordBatch; 4] = tables.try_into().map_err(|_| CatalogError::Schema("files"))?;
        Self::new(tables)
    }
}

/// The `file_id` column (the first of every table).
fn file_id_column(batch: &RecordBatch) -> &StringArray {
    batch.column(0).as_string::<i32>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_batch_has_the_table_schemas() {
        let batch = CatalogBatch::empty();
        assert!(batch.is_empty());
        for table in Table::ALL {
            assert_eq!(batch.table(table).schema(), table.schema());
            assert_eq!(batch.table(table).num_rows(), 0);
        }
        assert!(batch.without(&HashSet::from(["x".to_string()])).is_ok());
    }

    #[test]
    fn refuses_foreign_schemas() {
        let mut tables = Table::ALL.map(|t| RecordBatch::new_empty(t.schema()));
        tables.swap(1, 2);
        assert!(matches!(CatalogBatch::new(tables), Err(CatalogError::Schema("parts"))));
    }
}
