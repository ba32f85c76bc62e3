//! Prepared statements, and closing what a request opened on the server even when the
//! request is abandoned.
//!
//! `INSERT` statements are executed with a parameter batch as the Flight SQL specification
//! describes it: the parameters travel in the DoPut stream of
//! `CommandPreparedStatementUpdate`. (arrow-flight's `PreparedStatement` binds them in a
//! separate DoPut first and then sends the update without data, which servers that read the
//! parameters from the update stream — Apache Arrow's reference server among them — refuse.)
//! Queries bind theirs with a DoPut of `CommandPreparedStatementQuery`, then fetch.

use arrow::array::RecordBatch;
use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult,
    ActionEndTransactionRequest, Any, CommandPreparedStatementQuery, CommandPreparedStatementUpdate,
    DoPutPreparedStatementResult, DoPutUpdateResult, EndTransaction, ProstMessageExt,
};
use arrow_flight::{Action, FlightDescriptor, FlightInfo};
use prost::Message;
use tonic::IntoRequest;
use tonic::codegen::Bytes;
use tonic::transport::Channel;

use super::messages;

/// Something a request opened on the server (a prepared statement, a transaction) and the
/// action that ends it. [`Leftover::close`] runs the action. If the future that holds it
/// is dropped first (the sink's deadline ran out), dropping it spawns the action on the
/// runtime, so that an abandoned attempt leaves nothing open on the server.
pub(super) struct Leftover {
    client: FlightSqlServiceClient<Channel>,
    action: Option<Action>,
}

impl Leftover {
    /// The prepared statement `handle`, closed by `ClosePreparedStatement`.
    pub(super) fn statement(client: &FlightSqlServiceClient<Channel>, handle: Bytes) -> Self {
        let close = ActionClosePreparedStatementRequest { prepared_statement_handle: handle };
        let action = Action { r#type: "ClosePreparedStatement".into(), body: close.as_any().encode_to_vec().into() };
        Self { client: client.clone(), action: Some(action) }
    }

    /// The transaction `id`, rolled back unless [`Leftover::forget`] is called (after its
    /// commit).
    pub(super) fn transaction(client: &FlightSqlServiceClient<Channel>, id: Bytes) -> Self {
        let rollback = ActionEndTransactionRequest { transaction_id: id, action: EndTransaction::Rollback as i32 };
        let action = Action { r#type: "EndTransaction".into(), body: rollback.as_any().encode_to_vec().into() };
        Self { client: client.clone(), action: Some(action) }
    }

    /// Runs the closing action now. (Dropped before it is done, it runs it again from
    /// [`Drop`]: closing twice is harmless, never closing is not.)
    pub(super) async fn close(mut self) -> Result<(), FlightError> {
        let Some(action) = self.action.clone() else { return Ok(()) };
        let result = run(&mut self.client, action).await;
        self.action = None;
        result
    }

    /// Ends nothing: the resource was ended otherwise (a committed transaction).
    pub(super) fn forget(mut self) {
        self.action = None;
    }
}

impl Drop for Leftover {
    fn drop(&mut self) {
        let Some(action) = self.action.take() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let mut client = self.client.clone();
        runtime.spawn(async move {
            if let Err(e) = run(&mut client, action).await {
                tracing::debug!(error = %e, "closing what an abandoned request left open on the server");
            }
        });
    }
}

/// Runs `action` and reads its results to the end.
async fn run(client: &mut FlightSqlServiceClient<Channel>, action: Action) -> Result<(), FlightError> {
    let mut results = client.do_action(action).await?;
    while results.message().await?.is_some() {}
    Ok(())
}

/// Prepares `sql` (in `transaction`, if any): its handle, and the statement to close.
async fn prepare(
    client: &mut FlightSqlServiceClient<Channel>,
    sql: String,
    transaction: Option<Bytes>,
) -> Result<(Bytes, Leftover), FlightError> {
    let request = ActionCreatePreparedStatementRequest { query: sql, transaction_id: transaction };
    let action = Action { r#type: "CreatePreparedStatement".into(), body: request.as_any().encode_to_vec().into() };
    let mut results = client.do_action(action).await?;
    let result =
        results.message().await?.ok_or_else(|| FlightError::protocol("no result from CreatePreparedStatement"))?;
    let created: ActionCreatePreparedStatementResult = Any::decode(&*result.body)?
        .unpack()?
        .ok_or_else(|| FlightError::protocol("CreatePreparedStatement returned another message"))?;
    let handle = created.prepared_statement_handle;
    let open = Leftover::statement(client, handle.clone());
    while results.message().await?.is_some() {}
    Ok((handle, open))
}

/// Prepares `sql` (in `transaction`, if any), executes it once per row of `params` (sent
/// in messages of at most `budget` bytes of rows), closes it, and returns the rows affected.
pub(super) async fn execute_update(
    client: &mut FlightSqlServiceClient<Channel>,
    sql: String,
    transaction: Option<Bytes>,
    params: RecordBatch,
    budget: usize,
) -> Result<i64, FlightError> {
    let (handle, open) = prepare(client, sql, transaction).await?;
    let command = CommandPreparedStatementUpdate { prepared_statement_handle: handle };
    let descriptor = FlightDescriptor::new_cmd(command.as_any().encode_to_vec());
    let outcome = messages::put(client, descriptor, params.schema(), &params, budget).await;
    close(open).await;
    Ok(DoPutUpdateResult::decode(&*outcome?.app_metadata)?.record_count)
}

/// Prepares the query `sql` and binds `params` (one row per execution): the FlightInfo to
/// fetch its result with, and the statement to close after the fetch.
pub(super) async fn bind_query(
    client: &mut FlightSqlServiceClient<Channel>,
    sql: String,
    params: RecordBatch,
    budget: usize,
) -> Result<(FlightInfo, Leftover), FlightError> {
    let (mut handle, open) = prepare(client, sql, None).await?;
    let bound = async {
        let command = CommandPreparedStatementQuery { prepared_statement_handle: handle.clone() };
        let descriptor = FlightDescriptor::new_cmd(command.as_any().encode_to_vec());
        let reply = messages::put(client, descriptor, params.schema(), &params, budget).await?;
        // A server may answer with a new handle for the statement with its parameters.
        if !reply.app_metadata.is_empty()
            && let Ok(result) = DoPutPreparedStatementResult::decode(&*reply.app_metadata)
            && let Some(new) = result.prepared_statement_handle
        {
            handle = new;
        }
        let command = CommandPreparedStatementQuery { prepared_statement_handle: handle.clone() };
        let mut request = FlightDescriptor::new_cmd(command.as_any().encode_to_vec()).into_request();
        if let Some(token) = client.token() {
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| FlightError::protocol("the bearer token is not valid in a header"))?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(client.inner_mut().get_flight_info(request).await?.into_inner())
    };
    match bound.await {
        Ok(info) => Ok((info, open)),
        Err(e) => {
            close(open).await;
            Err(e)
        }
    }
}

/// Closes `open`, logging a failure (the statement was used; closing is housekeeping).
pub(super) async fn close(open: Leftover) {
    if let Err(e) = open.close().await {
        tracing::debug!(error = %e, "closing a prepared statement");
    }
}
