//! What goes over the wire to a Flight SQL server: the catalog's columns re-encoded for
//! what the server can take (vectors as blobs, booleans and timestamps as integers), and
//! the `CREATE TABLE` text for the prepared-statement path.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder, Int8Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Float32Type, Schema, SchemaRef, TimestampMicrosecondType};

use super::options::{IngestPath, ScalarEncoding, VectorEncoding};
use crate::catalog::Table;
use crate::sink::SinkError;

/// The SQL type names a server understands in `CREATE TABLE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// ANSI-style names (`VARCHAR`, `BIGINT`, `VARBINARY`, `BOOLEAN`, `TIMESTAMP`…).
    Standard,
    /// SQLite-backed servers such as Apache Arrow's reference server, whose result reader
    /// knows only `TEXT`, `INTEGER`, `FLOAT`, `DOUBLE`, `BLOB` (and `TINYINT`, which it
    /// cannot read back).
    Sqlite,
}

/// How this sink talks to this server, decided once from SqlInfo and the options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Bulk ingest or prepared statements.
    pub ingest: IngestPath,
    /// A batch is one transaction.
    pub transactions: bool,
    /// Vector columns.
    pub vectors: VectorEncoding,
    /// Boolean and timestamp columns.
    pub scalars: ScalarEncoding,
    /// Type names for `CREATE TABLE`.
    pub dialect: Dialect,
}

impl Plan {
    /// The wire type of a catalog column.
    fn wire_type(&self, data_type: &DataType) -> DataType {
        match data_type {
            DataType::FixedSizeList(..) if self.vectors == VectorEncoding::Blob => DataType::Binary,
            DataType::Boolean if self.scalars == ScalarEncoding::Integer => DataType::Int8,
            DataType::Timestamp(..) if self.scalars == ScalarEncoding::Integer => DataType::Int64,
            other => other.clone(),
        }
    }

    /// The schema a table's rows have on the wire.
    pub fn wire_schema(&self, table: Table) -> SchemaRef {
        self.wire_schema_of(&table.schema())
    }

    /// The schema rows of `schema` have on the wire.
    pub fn wire_schema_of(&self, schema: &Schema) -> SchemaRef {
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), self.wire_type(f.data_type()), f.is_nullable()))
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// Rows of the table `name` re-encoded for the wire.
    pub fn to_wire(&self, name: &str, batch: &RecordBatch) -> Result<RecordBatch, SinkError> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
        for column in batch.columns() {
            columns.push(self.encode(column)?);
        }
        RecordBatch::try_new(self.wire_schema_of(&batch.schema()), columns)
            .map_err(|e| SinkError::Failed(format!("encoding {name} rows: {e}")))
    }

    fn encode(&self, column: &ArrayRef) -> Result<ArrayRef, SinkError> {
        Ok(match (column.data_type(), self.wire_type(column.data_type())) {
            (DataType::FixedSizeList(..), DataType::Binary) => {
                let lists = column.as_fixed_size_list();
                let width = usize::try_from(lists.value_length()).unwrap_or_default();
                let mut out = BinaryBuilder::with_capacity(lists.len(), lists.len() * width * 4);
                for i in 0..lists.len() {
                    if lists.is_null(i) {
                        out.append_null();
                        continue;
                    }
                    let values = lists.value(i);
                    let floats = values.as_primitive::<Float32Type>();
                    let bytes: Vec<u8> = floats.values().iter().flat_map(|v| v.to_le_bytes()).collect();
                    out.append_value(bytes);
                }
                Arc::new(out.finish())
            }
            (DataType::Boolean, DataType::Int8) => {
                let flags = column.as_boolean();
                Arc::new(flags.iter().map(|v| v.map(i8::from)).collect::<Int8Array>())
            }
            (DataType::Timestamp(..), DataType::Int64) => {
                let times = column.as_primitive::<TimestampMicrosecondType>();
                Arc::new(Int64Array::new(times.values().clone(), times.nulls().cloned()))
            }
            _ => Arc::clone(column),
        })
    }

    /// The parameter batch and the placeholder of each column for an `INSERT` prepared
    /// statement. SQLite-backed servers get binary values as hex text through `unhex(?)`:
    /// Apache Arrow's reference server binds binary parameters as NULL (arrow-go's
    /// example releases each parameter scalar before it reads it).
    pub fn parameters(&self, rows: RecordBatch) -> Result<(RecordBatch, Vec<&'static str>), SinkError> {
        if self.dialect != Dialect::Sqlite || !rows.schema().fields().iter().any(|f| f.data_type() == &DataType::Binary)
        {
            let marks = vec!["?"; rows.num_columns()];
            return Ok((rows, marks));
        }
        let mut fields = Vec::with_capacity(rows.num_columns());
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(rows.num_columns());
        let mut marks = Vec::with_capacity(rows.num_columns());
        for (field, column) in rows.schema().fields().iter().zip(rows.columns()) {
            if field.data_type() == &DataType::Binary {
                let hex: StringArray = column.as_binary::<i32>().iter().map(|v| v.map(hex)).collect();
                columns.push(Arc::new(hex));
                fields.push(Field::new(field.name(), DataType::Utf8, field.is_nullable()));
                marks.push("unhex(?)");
            } else {
                columns.push(Arc::clone(column));
                fields.push(field.as_ref().clone());
                marks.push("?");
            }
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(|e| SinkError::Failed(format!("encoding parameters: {e}")))?;
        Ok((batch, marks))
    }

    /// `CREATE TABLE IF NOT EXISTS` of `table` (its name as SQL text) with the columns of
    /// `schema`, for the prepared-statement path.
    pub fn create_table(&self, table: &str, schema: &Schema) -> Result<String, SinkError> {
        let mut columns = Vec::new();
        for field in self.wire_schema_of(schema).fields() {
            let null = if field.is_nullable() { "" } else { " NOT NULL" };
            columns.push(format!("\"{}\" {}{null}", field.name(), self.sql_type(field.data_type())?));
        }
        Ok(format!("CREATE TABLE IF NOT EXISTS {table} ({})", columns.join(", ")))
    }

    fn sql_type(&self, data_type: &DataType) -> Result<&'static str, SinkError> {
        let sqlite = self.dialect == Dialect::Sqlite;
        Ok(match data_type {
            DataType::Utf8 if sqlite => "TEXT",
            DataType::Utf8 => "VARCHAR",
            // The reference server's result reader fails on TINYINT columns.
            DataType::Int8 if sqlite => "INTEGER",
            DataType::Int8 => "SMALLINT",
            DataType::Int32 => "INTEGER",
            DataType::Int64 if sqlite => "INTEGER",
            DataType::Int64 => "BIGINT",
            DataType::Float32 if sqlite => "FLOAT",
            DataType::Float32 => "REAL",
            DataType::Float64 => "DOUBLE",
            DataType::Binary if sqlite => "BLOB",
            DataType::Binary => "VARBINARY",
            DataType::Boolean => "BOOLEAN",
            DataType::Timestamp(..) => "TIMESTAMP",
            other => {
                return Err(SinkError::Config(format!(
                    "no SQL type for {other} columns on the prepared-statement path; use vectors=blob"
                )));
            }
        })
    }
}

/// Decodes a stored vector from any encoding a server may return: list of floats, binary
/// little-endian `f32`, or JSON text (servers that keep lists as text).
pub fn decode_vector(column: &dyn Array, row: usize) -> Option<Vec<f32>> {
    if column.is_null(row) {
        return None;
    }
    match column.data_type() {
        DataType::Binary => le_floats(column.as_binary::<i32>().value(row)),
        DataType::LargeBinary => le_floats(column.as_binary::<i64>().value(row)),
        DataType::FixedSizeList(..) => floats(column.as_fixed_size_list().value(row).as_ref()),
        DataType::List(_) => floats(column.as_list::<i32>().value(row).as_ref()),
        DataType::Utf8 => serde_json::from_str(column.as_string::<i32>().value(row)).ok(),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn le_floats(bytes: &[u8]) -> Option<Vec<f32>> {
    bytes
        .len()
        .is_multiple_of(4)
        .then(|| bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

fn floats(values: &dyn Array) -> Option<Vec<f32>> {
    match values.data_type() {
        DataType::Float32 => Some(values.as_primitive::<Float32Type>().values().to_vec()),
        DataType::Float64 => {
            Some(values.as_primitive::<arrow::datatypes::Float64Type>().values().iter().map(|v| *v as f32).collect())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::CatalogBatch;

    fn plan(vectors: VectorEncoding, scalars: ScalarEncoding) -> Plan {
        Plan { ingest: IngestPath::Prepared, transactions: true, vectors, scalars, dialect: Dialect::Sqlite }
    }

    #[test]
    fn limited_encoding_has_only_bindable_types() {
        let p = plan(VectorEncoding::Blob, ScalarEncoding::Integer);
        for table in Table::ALL {
            for field in p.wire_schema(table).fields() {
                assert!(
                    matches!(
                        field.data_type(),
                        DataType::Utf8
                            | DataType::Int8
                            | DataType::Int32
                            | DataType::Int64
                            | DataType::Float32
                            | DataType::Float64
                            | DataType::Binary
                    ),
                    "{}.{} is {}",
                    table.name(),
                    field.name(),
                    field.data_type()
                );
            }
            let empty = CatalogBatch::empty();
            assert!(p.to_wire(table.name(), empty.table(table)).is_ok());
        }
    }

    #[test]
    fn blob_vectors_round_trip() {
        use arrow::array::{FixedSizeListArray, Float32Array};
        let item = crate::catalog::schema::vector_item();
        let values = Float32Array::from(vec![0.5, -1.25, 3.0, 0.0]);
        let lists: ArrayRef = Arc::new(FixedSizeListArray::new(item, 2, Arc::new(values), None));
        let p = plan(VectorEncoding::Blob, ScalarEncoding::Native);
        let wire = p.encode(&lists).ok();
        let wire = wire.as_deref();
        assert_eq!(wire.map(|w| w.data_type().clone()), Some(DataType::Binary));
        assert_eq!(wire.and_then(|w| decode_vector(w, 1)), Some(vec![3.0, 0.0]));
        assert_eq!(decode_vector(lists.as_ref(), 0), Some(vec![0.5, -1.25]));
    }

    #[test]
    fn sqlite_gets_binary_parameters_as_hex() {
        use arrow::array::BinaryArray;
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("v", DataType::Binary, true),
        ]));
        let rows = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["a", "b"])),
                Arc::new(BinaryArray::from(vec![Some(&[0x01u8, 0xab][..]), None])),
            ],
        )
        .ok();
        let Some(rows) = rows else { panic!("batch") };
        let sqlite = plan(VectorEncoding::Blob, ScalarEncoding::Integer);
        let (params, marks) = sqlite.parameters(rows.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(marks, ["?", "unhex(?)"]);
        let hex = params.column(1).as_string::<i32>();
        assert_eq!((hex.value(0), hex.is_null(1)), ("01ab", true));
        let standard = Plan { dialect: Dialect::Standard, ..sqlite };
        let (params, marks) = standard.parameters(rows).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(marks, ["?", "?"]);
        assert_eq!(params.column(1).data_type(), &DataType::Binary);
    }

    #[test]
    fn standard_ddl_names() {
        let Ok(arrow_uri) = "flight+grpc://h:1?schema=vfx&table_prefix=exr_".parse::<crate::sink::SinkUri>() else {
            panic!("uri");
        };
        let crate::sink::SinkUri::Flight(options) = arrow_uri else { panic!("not flight") };
        let p = Plan { dialect: Dialect::Standard, ..plan(VectorEncoding::Blob, ScalarEncoding::Native) };
        let ddl = p.create_table(&options.table_name(Table::Files), &Table::Files.schema()).unwrap_or_default();
        assert!(
            ddl.starts_with("CREATE TABLE IF NOT EXISTS \"vfx\".\"exr_files\" (\"file_id\" VARCHAR NOT NULL"),
            "{ddl}"
        );
        assert!(ddl.contains("\"metadata_embedding\" VARBINARY"), "{ddl}");
        assert!(ddl.contains("\"inspected_at\" TIMESTAMP NOT NULL"), "{ddl}");
    }
}
