//! Flight messages of bounded size. arrow-flight's encoder splits a batch into messages by
//! its average row size, so a batch whose rows differ in size (a few files with megabytes
//! of header among many small ones) can still make one message larger than the server
//! accepts (gRPC's default receive limit is 4 MiB: RESOURCE_EXHAUSTED). Here the rows are
//! cut by their own sizes instead, and each slice travels as one message.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::{FlightData, FlightDescriptor, PutResult};
use futures::{TryStreamExt, stream};
use tonic::transport::Channel;

use crate::catalog::row_sizes;

/// Bytes of a message that are not row data: the IPC metadata (a few hundred bytes per
/// column), buffer padding, the descriptor.
pub(super) const HEADROOM: usize = 64 * 1024;

/// The largest row a sink with messages of `max_message_bytes` takes, counted on the
/// catalog's rows: a message's room for rows, less as much again for what the wire
/// encoding adds to a row (vectors as hex text: at most a few KiB).
pub(super) fn max_row_bytes(max_message_bytes: usize) -> usize {
    max_message_bytes.saturating_sub(2 * HEADROOM)
}

/// `rows` cut into consecutive slices of at most `budget` bytes of rows each (a row
/// larger than `budget` goes alone); none for no rows.
pub(super) fn bounded(rows: &RecordBatch, budget: usize) -> Vec<RecordBatch> {
    let mut slices = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (row, size) in row_sizes(rows).into_iter().enumerate() {
        if row > start && bytes + size > budget {
            slices.push(rows.slice(start, row - start));
            (start, bytes) = (row, 0);
        }
        bytes += size;
    }
    if start < rows.num_rows() {
        slices.push(rows.slice(start, rows.num_rows() - start));
    }
    slices
}

/// A DoPut of `rows` (of `schema`) under `descriptor`, in messages of at most `budget`
/// bytes of rows each; the server's first reply.
pub(super) async fn put(
    client: &mut FlightSqlServiceClient<Channel>,
    descriptor: FlightDescriptor,
    schema: SchemaRef,
    rows: &RecordBatch,
    budget: usize,
) -> Result<PutResult, FlightError> {
    let slices = bounded(rows, budget);
    // One message per slice: the encoder's own split would count each slice's whole
    // (shared) buffers, not its rows.
    let data: Vec<FlightData> = FlightDataEncoderBuilder::new()
        .with_flight_descriptor(Some(descriptor))
        .with_schema(schema)
        .with_max_flight_data_size(usize::MAX)
        .build(stream::iter(slices.into_iter().map(Ok)))
        .try_collect()
        .await?;
    let mut results = client.do_put(stream::iter(data)).await?;
    results.message().await?.ok_or_else(|| FlightError::protocol("no result from the server"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::StringArray;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    /// A few large rows among many small ones (what defeats splitting by the average):
    /// every slice stays within the budget, the rows stay in order, none is lost.
    #[test]
    fn skewed_rows_are_cut_by_their_own_sizes() {
        let mut values: Vec<String> = (0..300).map(|i| format!("small-{i}")).collect();
        for big in [10, 11, 12, 13, 200] {
            values[big] = "x".repeat(900_000);
        }
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Utf8, false)]));
        let column = Arc::new(StringArray::from(values.clone()));
        let Ok(rows) = RecordBatch::try_new(schema, vec![column]) else { panic!("batch") };
        let budget = 2 * 1024 * 1024;
        let slices = bounded(&rows, budget);
        assert!(slices.len() >= 3, "{} slices", slices.len());
        for slice in &slices {
            let bytes: usize = row_sizes(slice).iter().sum();
            assert!(bytes <= budget, "a slice of {bytes} bytes");
        }
        let joined: Vec<String> = slices
            .iter()
            .flat_map(|s| s.column(0).as_any().downcast_ref::<StringArray>().into_iter().flatten().flatten())
            .map(str::to_owned)
            .collect();
        assert_eq!(joined, values);
        // A row over the budget travels alone.
        let alone = bounded(&rows, 500_000);
        assert!(alone.iter().all(|s| s.num_rows() == 1 || row_sizes(s).iter().sum::<usize>() <= 500_000));
        assert!(bounded(&rows.slice(0, 0), budget).is_empty());
    }
}
