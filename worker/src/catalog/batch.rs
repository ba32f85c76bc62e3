//! [`CatalogBatch`]: the rows of the four tables for a set of files, the unit a sink
//! writes atomically, every row tagged with the [`WriteId`] of the attempt that writes it.

use std::collections::HashSet;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::DataType;
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

/// A file split off a batch by [`CatalogBatch::split_oversize`]: one of its rows is larger
/// than a sink can take in one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oversize {
    /// The file's key (as listed).
    pub key: String,
    /// The file's `file_id`.
    pub file_id: String,
    /// Bytes of its largest row.
    pub row_bytes: usize,
    /// The most a row may take.
    pub limit: usize,
}

impl std::fmt::Display for Oversize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rows of {} bytes exceed the sink's message limit of {} bytes per row", self.row_bytes, self.limit)
    }
}

impl CatalogBatch {
    /// The batch without the files that have a row over `max_row_bytes` (as
    /// [`row_sizes`] counts), and those files.
    pub fn split_oversize(&self, max_row_bytes: usize) -> Result<(Self, Vec<Oversize>), CatalogError> {
        let mut largest: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for batch in &self.tables {
            for (id, size) in file_id_column(batch).iter().zip(row_sizes(batch)) {
                if let Some(id) = id
                    && size > max_row_bytes
                {
                    let entry = largest.entry(id).or_default();
                    *entry = (*entry).max(size);
                }
            }
        }
        if largest.is_empty() {
            return Ok((self.clone(), Vec::new()));
        }
        let files = &self.tables[Table::Files as usize];
        let keys = files.column_by_name("key").and_then(|k| k.as_string_opt::<i32>());
        let mut oversize = Vec::with_capacity(largest.len());
        for (row, id) in file_id_column(files).iter().enumerate() {
            if let Some(id) = id
                && let Some(&row_bytes) = largest.get(id)
            {
                let key = keys.map_or_else(|| id.to_string(), |k| k.value(row).to_string());
                oversize.push(Oversize { key, file_id: id.to_string(), row_bytes, limit: max_row_bytes });
            }
        }
        let ids: HashSet<String> = largest.into_keys().map(str::to_owned).collect();
        Ok((self.without(&ids)?, oversize))
    }
}

/// Bytes each row of `batch` takes in Arrow buffers (the body of an IPC message), for any
/// column type: fixed-width values, text and binary values with their offsets, list items.
/// Validity bits are not counted.
pub fn row_sizes(batch: &RecordBatch) -> Vec<usize> {
    let mut sizes = vec![0; batch.num_rows()];
    for column in batch.columns() {
        add_sizes(column.as_ref(), &mut sizes);
    }
    sizes
}

fn add_sizes(array: &dyn Array, sizes: &mut [usize]) {
    let size: Box<dyn Fn(usize) -> usize + '_> = match array.data_type() {
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            Box::new(move |i| a.value(i).len() + 4)
        }
        DataType::LargeUtf8 => {
            let a = array.as_string::<i64>();
            Box::new(move |i| a.value(i).len() + 8)
        }
        DataType::Utf8View => {
            let a = array.as_string_view();
            Box::new(move |i| a.value(i).len() + 16)
        }
        DataType::Binary => {
            let a = array.as_binary::<i32>();
            Box::new(move |i| a.value(i).len() + 4)
        }
        DataType::LargeBinary => {
            let a = array.as_binary::<i64>();
            Box::new(move |i| a.value(i).len() + 8)
        }
        DataType::BinaryView => {
            let a = array.as_binary_view();
            Box::new(move |i| a.value(i).len() + 16)
        }
        DataType::FixedSizeList(..) => {
            let a = array.as_fixed_size_list();
            Box::new(move |i| total_size(a.value(i).as_ref()))
        }
        DataType::List(_) => {
            let a = array.as_list::<i32>();
            Box::new(move |i| total_size(a.value(i).as_ref()) + 4)
        }
        DataType::LargeList(_) => {
            let a = array.as_list::<i64>();
            Box::new(move |i| total_size(a.value(i).as_ref()) + 8)
        }
        DataType::Boolean => Box::new(|_| 1),
        other => {
            let width =
                other.primitive_width().unwrap_or_else(|| array.get_array_memory_size().div_ceil(array.len().max(1)));
            Box::new(move |_| width)
        }
    };
    for (row, bytes) in sizes.iter_mut().enumerate() {
        *bytes += size(row);
    }
}

/// Bytes of all rows of `array`.
fn total_size(array: &dyn Array) -> usize {
    let mut sizes = vec![0; array.len()];
    add_sizes(array, &mut sizes);
    sizes.iter().sum()
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
    fn row_sizes_count_text_lists_and_fixed_width() -> Result<(), ArrowError> {
        use std::sync::Arc;

        use arrow::array::{ArrayRef, FixedSizeListArray, Float32Array, Int64Array, StringViewArray};
        use arrow::datatypes::{Field, Schema};
        let vectors = FixedSizeListArray::new(
            super::super::schema::vector_item(),
            3,
            Arc::new(Float32Array::from(vec![0.0; 6])),
            None,
        );
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec!["ab", "abcdef"])),
            Arc::new(StringViewArray::from(vec!["x", ""])),
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(BooleanArray::from(vec![true, false])),
            Arc::new(vectors),
        ];
        let fields: Vec<Field> =
            columns.iter().enumerate().map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true)).collect();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        // text + 4-byte offset, view + 16-byte view, 8, 1, 3 × 4.
        assert_eq!(row_sizes(&batch), [6 + 17 + 8 + 1 + 12, 10 + 16 + 8 + 1 + 12]);
        assert_eq!(row_sizes(&batch.slice(1, 1)), [10 + 16 + 8 + 1 + 12], "slices count only their rows");
        Ok(())
    }

    /// Files with a row over the limit leave the batch with all their rows; the others stay.
    #[test]
    fn split_oversize_takes_out_whole_files() -> Result<(), Box<dyn std::error::Error>> {
        let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples");
        let mut builder = super::super::CatalogBuilder::new(super::super::ScanInfo::default());
        for name in ["plate_yc.1001.exr", "shot010_aovs.1001.exr"] {
            let bytes = std::fs::read(samples.join(name))?;
            let header = crate::header::parse_complete(&bytes)?;
            let file = super::super::SourceFile {
                uri: format!("file:///{name}"),
                bucket: None,
                key: name.into(),
                size_bytes: bytes.len() as u64,
                last_modified: None,
                etag: None,
            };
            builder.add(file, &header, None);
        }
        let batch = builder.finish()?;
        let largest = |b: &CatalogBatch| b.tables.iter().flat_map(row_sizes).max().unwrap_or_default();
        let (all, none) = batch.split_oversize(largest(&batch))?;
        assert!(none.is_empty());
        assert_eq!((all.files(), all.rows()), (2, batch.rows()));

        // Just under the largest row: the file that has it goes, the other stays whole.
        let (kept, out) = batch.split_oversize(largest(&batch) - 1)?;
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].row_bytes, largest(&batch));
        assert_eq!(kept.files(), 1);
        let gone: HashSet<String> = HashSet::from([out[0].file_id.clone()]);
        assert_eq!(kept.rows(), batch.without(&gone)?.rows());
        assert!(kept.rows() > 0 && kept.rows() < batch.rows());
        assert!(out[0].to_string().starts_with(&format!("rows of {} bytes exceed", out[0].row_bytes)));

        let (empty, both) = batch.split_oversize(0)?;
        assert!(empty.is_empty() && empty.rows() == 0);
        let mut keys: Vec<&str> = both.iter().map(|o| o.key.as_str()).collect();
        keys.sort();
        assert_eq!(keys, ["plate_yc.1001.exr", "shot010_aovs.1001.exr"]);
        Ok(())
    }

    #[test]
    fn refuses_foreign_schemas() {
        let mut tables = Table::ALL.map(|t| RecordBatch::new_empty(t.schema()));
        tables.swap(1, 2);
        assert!(matches!(CatalogBatch::new(tables), Err(CatalogError::Schema("parts"))));
    }
}
