//! The flatbuffer bodies of the catalog calls (create schema, the schema and table
//! listings), with the code `flatc` generated from `tabular.fbs`, and the Arrow IPC bodies
//! (a table's schema, inserted rows, deleted row ids).

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use arrow::ipc::writer::{DictionaryTracker, IpcDataGenerator, IpcWriteOptions, StreamWriter, write_message};

use crate::sink::SinkError;

#[allow(clippy::all, clippy::pedantic, unsafe_op_in_unsafe_fn, mismatched_lifetime_syntaxes, missing_docs)]
#[path = "tabular_generated.rs"]
pub(super) mod generated;

use generated::vast_flatbuf::tabular as fb;

/// `CreateSchemaRequest{properties: ""}`, as the SDK sends it.
pub fn create_schema() -> Vec<u8> {
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let properties = fbb.create_string("");
    let root = fb::CreateSchemaRequest::create(&mut fbb, &fb::CreateSchemaRequestArgs { properties: Some(properties) });
    fbb.finish(root, None);
    fbb.finished_data().to_vec()
}

fn malformed(what: &str, e: impl std::fmt::Display) -> SinkError {
    SinkError::Failed(format!("malformed {what} from the server: {e}"))
}

/// The names in a `ListSchemasResponse`.
pub fn schema_names(body: &[u8]) -> Result<Vec<String>, SinkError> {
    let list = flatbuffers::root::<fb::ListSchemasResponse>(body).map_err(|e| malformed("schema listing", e))?;
    Ok(list.schemas().iter().flatten().filter_map(|s| s.name().map(str::to_owned)).collect())
}

/// The names in a `ListTablesResponse`.
pub fn table_names(body: &[u8]) -> Result<Vec<String>, SinkError> {
    let list = flatbuffers::root::<fb::ListTablesResponse>(body).map_err(|e| malformed("table listing", e))?;
    Ok(list.tables().iter().flatten().filter_map(|t| t.name().map(str::to_owned)).collect())
}

fn ipc_error(e: arrow::error::ArrowError) -> SinkError {
    SinkError::Failed(format!("encoding Arrow IPC: {e}"))
}

/// One encapsulated IPC schema message (`pyarrow.Schema.serialize()`): a create-table body.
pub fn schema_message(schema: &Schema) -> Result<Vec<u8>, SinkError> {
    let options = IpcWriteOptions::default();
    let encoded = IpcDataGenerator::default().schema_to_bytes_with_dictionary_tracker(
        schema,
        &mut DictionaryTracker::new(false),
        &options,
    );
    let mut out = Vec::new();
    write_message(&mut out, encoded, &options).map_err(ipc_error)?;
    Ok(out)
}

/// An IPC stream of one batch: an insert or delete body.
pub fn ipc_stream(batch: &RecordBatch) -> Result<Vec<u8>, SinkError> {
    let mut writer = StreamWriter::try_new(Vec::new(), &batch.schema()).map_err(ipc_error)?;
    writer.write(batch).map_err(ipc_error)?;
    writer.into_inner().map_err(ipc_error)
}

/// The schema of an IPC stream (the `?column` answer).
pub fn stream_schema(body: &[u8]) -> Result<Schema, SinkError> {
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None)
        .map_err(|e| malformed("column listing", e))?;
    Ok(reader.schema().as_ref().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_round_trip_through_the_generated_code() -> Result<(), SinkError> {
        let mut fbb = flatbuffers::FlatBufferBuilder::new();
        let names: Vec<_> = ["files", "parts"]
            .iter()
            .map(|n| {
                let name = fbb.create_string(n);
                fb::ObjectDetails::create(&mut fbb, &fb::ObjectDetailsArgs { name: Some(name) })
            })
            .collect();
        let tables = fbb.create_vector(&names);
        let bucket = fbb.create_string("db");
        let root = fb::ListTablesResponse::create(
            &mut fbb,
            &fb::ListTablesResponseArgs { bucket_name: Some(bucket), schema_name: None, tables: Some(tables) },
        );
        fbb.finish(root, None);
        assert_eq!(table_names(fbb.finished_data())?, ["files", "parts"]);
        assert!(schema_names(b"\x01").is_err());
        let request = create_schema();
        let decoded = flatbuffers::root::<fb::CreateSchemaRequest>(&request).map_err(|e| malformed("test", e))?;
        assert_eq!(decoded.properties(), Some(""));
        Ok(())
    }
}
