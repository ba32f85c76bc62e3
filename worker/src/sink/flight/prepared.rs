//! `INSERT` prepared statements executed with a parameter batch as the Flight SQL
//! specification describes it: the parameters travel in the DoPut stream of
//! `CommandPreparedStatementUpdate`. (arrow-flight's `PreparedStatement` binds them in a
//! separate DoPut first and then sends the update without data, which servers that read the
//! parameters from the update stream — Apache Arrow's reference server among them — refuse.)

use arrow::array::RecordBatch;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult,
    Any, CommandPreparedStatementUpdate, DoPutUpdateResult, ProstMessageExt,
};
use arrow_flight::{Action, FlightData, FlightDescriptor};
use futures::{TryStreamExt, stream};
use prost::Message;
use tonic::codegen::Bytes;
use tonic::transport::Channel;

/// Prepares `sql` (in `transaction`, if any), executes it once per row of `params`, closes
/// it, and returns the rows affected.
pub(super) async fn execute_update(
    client: &mut FlightSqlServiceClient<Channel>,
    sql: String,
    transaction: Option<Bytes>,
    params: RecordBatch,
) -> Result<i64, FlightError> {
    let request = ActionCreatePreparedStatementRequest { query: sql, transaction_id: transaction };
    let action = Action { r#type: "CreatePreparedStatement".into(), body: request.as_any().encode_to_vec().into() };
    let mut results = client.do_action(action).await?;
    let result =
        results.message().await?.ok_or_else(|| FlightError::protocol("no result from CreatePreparedStatement"))?;
    let created: ActionCreatePreparedStatementResult = Any::decode(&*result.body)?
        .unpack()?
        .ok_or_else(|| FlightError::protocol("CreatePreparedStatement returned another message"))?;
    let handle = created.prepared_statement_handle;

    let outcome = put_update(client, handle.clone(), params).await;

    let close = ActionClosePreparedStatementRequest { prepared_statement_handle: handle };
    let action = Action { r#type: "ClosePreparedStatement".into(), body: close.as_any().encode_to_vec().into() };
    if let Err(e) = client.do_action(action).await {
        tracing::debug!(error = %e, "closing a prepared statement");
    }
    outcome
}

async fn put_update(
    client: &mut FlightSqlServiceClient<Channel>,
    handle: Bytes,
    params: RecordBatch,
) -> Result<i64, FlightError> {
    let command = CommandPreparedStatementUpdate { prepared_statement_handle: handle };
    let descriptor = FlightDescriptor::new_cmd(command.as_any().encode_to_vec());
    // Large batches are split into messages of at most 2 MiB by the encoder.
    let data: Vec<FlightData> = FlightDataEncoderBuilder::new()
        .with_flight_descriptor(Some(descriptor))
        .build(stream::iter([Ok(params)]))
        .try_collect()
        .await?;
    let mut results = client.do_put(stream::iter(data)).await?;
    let result = results.message().await?.ok_or_else(|| FlightError::protocol("no result from the update"))?;
    Ok(DoPutUpdateResult::decode(&*result.app_metadata)?.record_count)
}
