//! VAST DataBase (or any Arrow Flight SQL server) through the `arrow-flight` crate.
//!
//! On connect the sink authenticates (basic-auth handshake for a bearer token, or a given
//! token), reads the server's SqlInfo and decides its [`Plan`]: bulk ingest
//! (`CommandStatementIngest`) when the server advertises it, else `INSERT` prepared
//! statements with parameter batches; one transaction per batch when the server supports
//! them; list or blob vectors, native or integer booleans and timestamps. Then it creates
//! the schema and tables when missing and checks their columns.
//!
//! Rows travel in Flight messages of at most `max_message_bytes` ([`messages`]); a file
//! with a row that cannot fit is left out of the batch by the [`super::Writer`]. Lookups
//! bind their keys as parameters of prepared statements. What a request opens on the
//! server (a prepared statement, a transaction) is closed or rolled back even when the
//! request is abandoned at the sink's deadline ([`prepared::Leftover`]).
//!
//! A batch is written child tables first and `files` last, in one transaction when the
//! server has them; readers query the `indexed_*` views the sink creates (or their SQL, on
//! a server without views), which hide what a failed or concurrent attempt left
//! ([`canonical`](super::canonical)).

mod messages;
mod options;
mod prepared;
mod status;
mod wire;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    CommandStatementIngest, EndTransaction, ProstMessageExt, SqlInfo, SqlSupportedTransaction, TableDefinitionOptions,
    TableExistsOption, TableNotExistOption,
};
use arrow_flight::{FlightDescriptor, FlightInfo, HandshakeRequest};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::{StreamExt, stream};
use prost::Message as _;
use tonic::codegen::Bytes;
use tonic::metadata::MetadataMap;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

pub use options::{Choice, Credentials, FlightOptions, IngestPath, ScalarEncoding, VectorEncoding};
pub(super) use wire::decode_vector;
pub use wire::{Dialect, Plan};

use super::canonical::{self, GcCounts, ViewDdl};
use super::lookup::{self, IndexedQuery};
use super::similar::{Newest, TopK};
use super::{IndexedFile, Neighbour, SimilarBy, Sink, SinkError, Stored};
use crate::catalog::schema::WRITE_ID;
use crate::catalog::{CatalogBatch, SourceFile, Table, WriteId};

/// Largest gRPC message accepted from the server.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// What the server says about itself (SqlInfo).
#[derive(Debug, Clone, Default, PartialEq)]
struct ServerInfo {
    name: String,
    version: String,
    transactions: bool,
    bulk_ingest: bool,
    ingest_transactions: bool,
    ddl_schema: bool,
}

/// A connected Flight SQL sink.
pub struct FlightSink {
    options: FlightOptions,
    credentials: Credentials,
    client: FlightSqlServiceClient<Channel>,
    plan: Plan,
}

impl FlightSink {
    /// Connects, authenticates, reads SqlInfo, and creates the schema and tables if missing.
    pub async fn connect(options: FlightOptions, credentials: Credentials) -> Result<Self, SinkError> {
        credentials.validate()?;
        let deadline = options.timeout;
        tokio::time::timeout(deadline, Self::connect_within(options, credentials))
            .await
            .unwrap_or_else(|_| Err(SinkError::Transient(format!("no answer from the server within {deadline:?}"))))
    }

    async fn connect_within(options: FlightOptions, credentials: Credentials) -> Result<Self, SinkError> {
        let client = client(&options).await?;
        let plan = Plan {
            ingest: IngestPath::Prepared,
            transactions: false,
            vectors: VectorEncoding::Blob,
            scalars: ScalarEncoding::Integer,
            dialect: Dialect::Standard,
        };
        let mut sink = Self { options, credentials, client, plan };
        sink.authenticate().await?;
        let info = sink.server_info().await?;
        sink.plan = decide(&sink.options, &info)?;
        tracing::info!(
            server = %info.name, version = %info.version, plan = ?sink.plan,
            "connected to Flight SQL server {}", sink.options.endpoint()
        );
        if let (Some(schema), true, true) = (&sink.options.schema, sink.options.create, info.ddl_schema) {
            let ddl = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
            sink.client.execute_update(ddl, None).await.map_err(|e| sink.error(e, "creating the schema"))?;
        }
        for table in Table::ALL {
            sink.ensure_table(table).await?;
        }
        if sink.options.create {
            sink.create_views_and_indexes().await;
        }
        Ok(sink)
    }

    /// The `indexed_*` views readers query and, on SQLite-backed servers, an index of each
    /// table by `(file_id, write_id)` for the views' and the checks' lookups. A server that
    /// refuses them is still written to: readers then use the views' SQL
    /// (`docs/queries.md`), and the refusal is logged.
    async fn create_views_and_indexes(&mut self) {
        let sqlite = self.plan.dialect == Dialect::Sqlite;
        let names = self.options.names();
        let mut statements = Vec::new();
        if sqlite {
            for table in Table::ALL {
                let index = names.qualified(&format!("{}_by_write", table.name()));
                let on = names.bare(table.name());
                statements.push(format!("CREATE INDEX IF NOT EXISTS {index} ON {on} (file_id, {WRITE_ID})"));
            }
        }
        let ddl = if sqlite { ViewDdl::IfNotExists } else { ViewDdl::OrReplace };
        statements.extend(canonical::create_views(&names, ddl));
        for sql in statements {
            if let Err(e) = self.client.execute_update(sql.clone(), None).await {
                tracing::warn!(error = %self.error(e, "creating a view"), %sql, "the server refused a view or index");
            }
        }
    }

    /// How this sink talks to its server.
    pub fn plan(&self) -> Plan {
        self.plan
    }

    fn error(&self, error: arrow_flight::error::FlightError, what: &str) -> SinkError {
        status::from_flight(error, what, self.credentials.username.is_some())
    }

    /// Sets the bearer token: the given one, or one from a basic-auth handshake.
    async fn authenticate(&mut self) -> Result<(), SinkError> {
        if let Some(token) = &self.credentials.token {
            self.client.set_token(token.clone());
            return Ok(());
        }
        let (Some(user), Some(password)) = (&self.credentials.username, &self.credentials.password) else {
            return Ok(());
        };
        self.client.clear_token();
        let mut request =
            tonic::Request::new(stream::iter([HandshakeRequest { protocol_version: 0, payload: Bytes::new() }]));
        let basic = format!("Basic {}", BASE64.encode(format!("{user}:{password}")));
        let value = basic
            .parse()
            .map_err(|_| SinkError::Config("the Flight SQL user name or password is not valid in a header".into()))?;
        request.metadata_mut().insert("authorization", value);
        let response = self
            .client
            .inner_mut()
            .handshake(request)
            .await
            .map_err(|s| status::from_status(&s, "handshake", false))?;
        // The token comes in the response headers or, from arrow-go servers, the trailers.
        let mut token = bearer(response.metadata());
        let mut replies = response.into_inner();
        while replies.message().await.map_err(|s| status::from_status(&s, "handshake", false))?.is_some() {}
        if token.is_none() {
            let trailers = replies.trailers().await.map_err(|s| status::from_status(&s, "handshake", false))?;
            token = trailers.as_ref().and_then(bearer);
        }
        let token = token.ok_or_else(|| SinkError::Auth("the server's handshake returned no bearer token".into()))?;
        self.client.set_token(token);
        Ok(())
    }

    async fn server_info(&mut self) -> Result<ServerInfo, SinkError> {
        // All of it: servers refuse a request naming an id they do not know (arrow-go: NOT_FOUND).
        let wanted = Vec::new();
        let flight_info = self.client.get_sql_info(wanted).await.map_err(|e| self.error(e, "SqlInfo"))?;
        let mut values: HashMap<u32, InfoValue> = HashMap::new();
        self.fetch(flight_info, "SqlInfo", |batch| {
            let names = batch.column(0).as_primitive_opt::<arrow::datatypes::UInt32Type>();
            let Some(names) = names else { return Ok(()) };
            let Some(union) = batch.column(1).as_union_opt() else { return Ok(()) };
            for row in 0..batch.num_rows() {
                let child = union.child(union.type_id(row));
                let offset = union.value_offset(row);
                if let Some(value) = InfoValue::read(child.as_ref(), offset) {
                    values.insert(names.value(row), value);
                }
            }
            Ok(())
        })
        .await?;
        let get = |info: SqlInfo| values.get(&(info as u32));
        let text = |info| get(info).and_then(InfoValue::text).unwrap_or_default();
        let flag = |info| get(info).and_then(InfoValue::flag).unwrap_or(false);
        let transaction_level = get(SqlInfo::FlightSqlServerTransaction).and_then(InfoValue::int).unwrap_or(0);
        Ok(ServerInfo {
            name: text(SqlInfo::FlightSqlServerName),
            version: text(SqlInfo::FlightSqlServerVersion),
            transactions: transaction_level >= SqlSupportedTransaction::Transaction as i64,
            bulk_ingest: flag(SqlInfo::FlightSqlServerBulkIngestion),
            ingest_transactions: flag(SqlInfo::FlightSqlServerIngestTransactionsSupported),
            ddl_schema: flag(SqlInfo::SqlDdlSchema),
        })
    }

    /// Runs every endpoint of `info` on this server, calling `each` per record batch (an
    /// error of `each` ends the fetch); returns the result schema.
    async fn fetch(
        &mut self,
        info: FlightInfo,
        what: &str,
        mut each: impl FnMut(&RecordBatch) -> Result<(), SinkError>,
    ) -> Result<Option<SchemaRef>, SinkError> {
        let mut schema = None;
        for endpoint in info.endpoint {
            let Some(ticket) = endpoint.ticket else { continue };
            let mut batches = self.client.do_get(ticket).await.map_err(|e| self.error(e, what))?;
            while let Some(batch) = batches.next().await {
                each(&batch.map_err(|e| self.error(e, what))?)?;
            }
            schema = schema.or_else(|| batches.schema().cloned());
        }
        Ok(schema)
    }

    /// Runs a query, calling `each` per record batch; returns the result schema.
    async fn query(
        &mut self,
        sql: String,
        each: impl FnMut(&RecordBatch) -> Result<(), SinkError>,
    ) -> Result<Option<SchemaRef>, SinkError> {
        let info = self.client.execute(sql, None).await.map_err(|e| self.error(e, "query"))?;
        self.fetch(info, "query", each).await
    }

    /// Runs one SQL statement (no deadline: a reader's query may be long) and returns the
    /// result's schema, when the server sent one, and its rows.
    pub async fn sql(&mut self, sql: &str) -> Result<(Option<SchemaRef>, Vec<RecordBatch>), SinkError> {
        let mut rows = Vec::new();
        let schema = self
            .query(sql.to_owned(), |batch| {
                rows.push(batch.clone());
                Ok(())
            })
            .await?;
        Ok((schema, rows))
    }

    /// Runs the query `sql` with its placeholders bound to `params` (a prepared statement,
    /// closed after), calling `each` per record batch of the result.
    async fn query_bound(
        &mut self,
        sql: String,
        params: RecordBatch,
        each: impl FnMut(&RecordBatch) -> Result<(), SinkError>,
    ) -> Result<(), SinkError> {
        let budget = self.message_budget();
        let (info, open) =
            prepared::bind_query(&mut self.client, sql, params, budget).await.map_err(|e| self.error(e, "query"))?;
        let fetched = self.fetch(info, "query", each).await;
        prepared::close(open).await;
        fetched.map(|_| ())
    }

    /// Bytes of rows per Flight message.
    fn message_budget(&self) -> usize {
        self.options.max_message_bytes - messages::HEADROOM
    }

    /// Creates `table` if missing (when allowed) and checks that it has the catalog's columns.
    async fn ensure_table(&mut self, table: Table) -> Result<(), SinkError> {
        let probe = format!("SELECT * FROM {} WHERE 1 = 0", self.options.table_name(table));
        let columns = match self.query(probe.clone(), |_| Ok(())).await {
            Ok(schema) => schema,
            Err(e) if e.is_transient() || matches!(e, SinkError::Auth(_)) => return Err(e),
            Err(missing) => {
                if !self.options.create {
                    return Err(SinkError::Schema(format!(
                        "table {} is not readable and create=false: {missing}",
                        self.options.table_name(table)
                    )));
                }
                self.create_table(table).await?;
                self.query(probe, |_| Ok(())).await?
            }
        };
        let mut found: HashSet<String> =
            columns.iter().flat_map(|s| s.fields().iter().map(|f| f.name().to_lowercase())).collect();
        if !found.contains(WRITE_ID) && self.options.create {
            self.add_write_id(table).await?;
            found.insert(WRITE_ID.to_string());
        }
        let missing: Vec<String> = self
            .plan
            .wire_schema(table)
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|name| !found.contains(name))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(SinkError::Schema(format!(
                "table {} lacks the columns {}",
                self.options.table_name(table),
                missing.join(", ")
            )))
        }
    }

    /// Adds `write_id` to a table written by an exrscan from before write ids. Its rows get
    /// the empty id, which sorts first: where an earlier version left a file twice, the
    /// views show it twice until the copies are removed by hand (`docs/sinks.md`).
    async fn add_write_id(&mut self, table: Table) -> Result<(), SinkError> {
        let text = if self.plan.dialect == Dialect::Sqlite { "TEXT" } else { "VARCHAR" };
        let ddl = format!(
            "ALTER TABLE {} ADD COLUMN \"{WRITE_ID}\" {text} NOT NULL DEFAULT ''",
            self.options.table_name(table)
        );
        tracing::info!(table = %self.options.table_name(table), "adding the write_id column to a catalog from an earlier exrscan");
        self.client.execute_update(ddl, None).await.map_err(|e| self.error(e, "adding the write_id column"))?;
        Ok(())
    }

    async fn create_table(&mut self, table: Table) -> Result<(), SinkError> {
        match self.plan.ingest {
            IngestPath::Prepared => {
                let ddl = self.plan.create_table(&self.options, table)?;
                self.client.execute_update(ddl, None).await.map_err(|e| self.error(e, "creating a table"))?;
            }
            IngestPath::Bulk => {
                let empty = RecordBatch::new_empty(self.plan.wire_schema(table));
                self.ingest(table, empty, None, TableNotExistOption::Create).await?;
            }
        }
        Ok(())
    }

    async fn ingest(
        &mut self,
        table: Table,
        rows: RecordBatch,
        transaction: Option<Bytes>,
        if_not_exist: TableNotExistOption,
    ) -> Result<(), SinkError> {
        let command = CommandStatementIngest {
            table_definition_options: Some(TableDefinitionOptions {
                if_not_exist: if_not_exist as i32,
                if_exists: TableExistsOption::Append as i32,
            }),
            table: self.options.bare_table_name(table),
            schema: self.options.schema.clone(),
            catalog: None,
            temporary: false,
            transaction_id: transaction,
            options: HashMap::new(),
        };
        let descriptor = FlightDescriptor::new_cmd(command.as_any().encode_to_vec());
        let budget = self.message_budget();
        messages::put(&mut self.client, descriptor, rows.schema(), &rows, budget)
            .await
            .map_err(|e| self.error(e, &format!("ingesting into {}", table.name())))?;
        Ok(())
    }

    async fn insert(&mut self, table: Table, rows: RecordBatch, transaction: Option<Bytes>) -> Result<(), SinkError> {
        let (rows, marks) = self.plan.parameters(rows)?;
        let schema = rows.schema();
        let names: Vec<String> = schema.fields().iter().map(|f| format!("\"{}\"", f.name())).collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            self.options.table_name(table),
            names.join(", "),
            marks.join(", ")
        );
        let what = format!("inserting into {}", table.name());
        let budget = self.message_budget();
        match prepared::execute_update(&mut self.client, sql, transaction, rows, budget).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.error(e, &what)),
        }
    }

    async fn write_tables(&mut self, batch: &CatalogBatch, transaction: Option<Bytes>) -> Result<(), SinkError> {
        // `files` last: without a transaction, a `files` row marks its file complete.
        for table in Table::WRITE_ORDER {
            let rows = self.plan.to_wire(table, batch.table(table))?;
            if rows.num_rows() == 0 {
                continue;
            }
            match self.plan.ingest {
                IngestPath::Bulk => self.ingest(table, rows, transaction.clone(), TableNotExistOption::Fail).await?,
                IngestPath::Prepared => self.insert(table, rows, transaction.clone()).await?,
            }
        }
        Ok(())
    }
}

/// The bearer token in an `authorization` entry.
fn bearer(metadata: &MetadataMap) -> Option<String> {
    let value = metadata.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
}

/// The gRPC channel: plain or TLS (system roots, or the given CA).
async fn channel(options: &FlightOptions) -> Result<Channel, SinkError> {
    let uri = options.endpoint();
    let bad = |e: tonic::transport::Error| SinkError::Config(format!("{uri}: {e}"));
    let mut endpoint = Endpoint::from_shared(uri.clone())
        .map_err(bad)?
        .connect_timeout(Duration::from_secs(10))
        .timeout(options.timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30));
    if options.tls {
        let mut tls = ClientTlsConfig::new();
        tls = match &options.ca_file {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| SinkError::Config(format!("reading the CA file {}: {e}", path.display())))?;
                tls.ca_certificate(Certificate::from_pem(pem))
            }
            None => tls.with_native_roots(),
        };
        if let Some(domain) = &options.tls_domain {
            tls = tls.domain_name(domain.clone());
        }
        endpoint = endpoint.tls_config(tls).map_err(bad)?;
    }
    endpoint.connect().await.map_err(|e| status::from_transport(&e, &uri))
}

/// A Flight SQL client on a new channel.
async fn client(options: &FlightOptions) -> Result<FlightSqlServiceClient<Channel>, SinkError> {
    let inner = FlightServiceClient::new(channel(options).await?)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    Ok(FlightSqlServiceClient::new_from_inner(inner))
}

/// The plan for a server: options where set, else what its SqlInfo allows.
fn decide(options: &FlightOptions, info: &ServerInfo) -> Result<Plan, SinkError> {
    let ingest = match options.ingest {
        Choice::Set(IngestPath::Bulk) if !info.bulk_ingest => {
            return Err(SinkError::Config("ingest=bulk, but the server does not advertise bulk ingest".into()));
        }
        Choice::Set(path) => path,
        Choice::Auto if info.bulk_ingest => IngestPath::Bulk,
        Choice::Auto => IngestPath::Prepared,
    };
    let supported = info.transactions && (ingest == IngestPath::Prepared || info.ingest_transactions);
    let transactions = match options.transactions {
        Choice::Set(true) if !supported => {
            return Err(SinkError::Config(format!(
                "transactions=on, but the server has no transactions for {ingest:?} writes"
            )));
        }
        Choice::Set(on) => on,
        Choice::Auto => supported,
    };
    let vectors = match (options.vectors, ingest) {
        (Choice::Set(VectorEncoding::List), IngestPath::Prepared) => {
            return Err(SinkError::Config(
                "vectors=list needs bulk ingest; this server takes prepared statements: use vectors=blob".into(),
            ));
        }
        (Choice::Set(v), _) => v,
        (Choice::Auto, IngestPath::Bulk) => VectorEncoding::List,
        (Choice::Auto, IngestPath::Prepared) => VectorEncoding::Blob,
    };
    let scalars = match (options.scalars, ingest) {
        (Choice::Set(s), _) => s,
        (Choice::Auto, IngestPath::Bulk) => ScalarEncoding::Native,
        (Choice::Auto, IngestPath::Prepared) => ScalarEncoding::Integer,
    };
    let sqlite = format!("{} {}", info.name, info.version).to_lowercase().contains("sqlite");
    let dialect = if sqlite { Dialect::Sqlite } else { Dialect::Standard };
    Ok(Plan { ingest, transactions, vectors, scalars, dialect })
}

/// One SqlInfo value (the dense union's members that the sink reads).
#[derive(Debug, Clone, PartialEq)]
enum InfoValue {
    Text(String),
    Flag(bool),
    Int(i64),
}

impl InfoValue {
    fn read(child: &dyn Array, offset: usize) -> Option<Self> {
        if offset >= child.len() || child.is_null(offset) {
            return None;
        }
        Some(match child.data_type() {
            DataType::Utf8 => InfoValue::Text(child.as_string::<i32>().value(offset).to_string()),
            DataType::Boolean => InfoValue::Flag(child.as_boolean().value(offset)),
            DataType::Int64 => InfoValue::Int(child.as_primitive::<arrow::datatypes::Int64Type>().value(offset)),
            DataType::Int32 => {
                InfoValue::Int(i64::from(child.as_primitive::<arrow::datatypes::Int32Type>().value(offset)))
            }
            _ => return None,
        })
    }

    fn text(&self) -> Option<String> {
        match self {
            InfoValue::Text(t) => Some(t.clone()),
            _ => None,
        }
    }

    fn flag(&self) -> Option<bool> {
        match self {
            InfoValue::Flag(b) => Some(*b),
            InfoValue::Int(i) => Some(*i != 0),
            InfoValue::Text(_) => None,
        }
    }

    fn int(&self) -> Option<i64> {
        match self {
            InfoValue::Int(i) => Some(*i),
            InfoValue::Flag(b) => Some(i64::from(*b)),
            InfoValue::Text(_) => None,
        }
    }
}

/// `op` bounded by `deadline`: past it, a transient error (the operation is retried on a
/// new connection). A request whose connection is reset mid-response can otherwise wait
/// forever.
async fn within<T>(deadline: Duration, op: impl Future<Output = Result<T, SinkError>>) -> Result<T, SinkError> {
    tokio::time::timeout(deadline, op)
        .await
        .unwrap_or_else(|_| Err(SinkError::Transient(format!("no answer from the server within {deadline:?}"))))
}

impl FlightSink {
    async fn existing_within(&mut self, ids: &[String]) -> Result<HashSet<String>, SinkError> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let mut found = HashSet::new();
        for ids in ids.chunks(lookup::MAX_KEYS) {
            let sql = format!(
                "SELECT file_id FROM {} WHERE file_id IN ({})",
                self.options.table_name(Table::Files),
                lookup::placeholders(ids.len())
            );
            let params = lookup::parameters(ids.iter().map(String::as_str))?;
            self.query_bound(sql, params, |batch| lookup::collect_ids(batch, &mut found)).await?;
        }
        Ok(found)
    }

    async fn write_within(&mut self, batch: &CatalogBatch) -> Result<(), SinkError> {
        if !self.plan.transactions {
            return self.write_tables(batch, None).await;
        }
        let transaction = self.client.begin_transaction().await.map_err(|e| self.error(e, "begin transaction"))?;
        // Rolled back if this future is dropped (past the deadline) before the commit
        // returns: an abandoned transaction would hold the server's locks.
        let open = prepared::Leftover::transaction(&self.client, transaction.clone());
        match self.write_tables(batch, Some(transaction.clone())).await {
            Ok(()) => {
                let committed = self.client.end_transaction(transaction, EndTransaction::Commit).await;
                open.forget();
                committed.map_err(|e| self.error(e, "commit"))
            }
            Err(error) => {
                if let Err(e) = open.close().await {
                    tracing::debug!(error = %e, "rolling back after a failed write");
                }
                Err(error)
            }
        }
    }

    async fn indexed_within(&mut self, files: &[SourceFile]) -> Result<HashSet<String>, SinkError> {
        let mut found = HashSet::new();
        for files in files.chunks(lookup::MAX_KEYS) {
            let query = IndexedQuery::new(files);
            let Some(sql) = query.sql(&self.options.table_name(Table::Files)) else { continue };
            self.query_bound(sql, query.parameters()?, |batch| query.collect(batch, &mut found)).await?;
        }
        Ok(found)
    }
}

impl FlightSink {
    async fn collect_garbage_within(&mut self, orphans_before: &WriteId) -> Result<GcCounts, SinkError> {
        let transaction = match self.plan.transactions {
            true => Some(self.client.begin_transaction().await.map_err(|e| self.error(e, "begin transaction"))?),
            false => None,
        };
        // Rolled back if a statement fails or this future is dropped before the commit.
        let open = transaction.clone().map(|t| prepared::Leftover::transaction(&self.client, t));
        let mut counts = GcCounts::default();
        for (table, sql) in canonical::gc_statements(&self.options.names(), orphans_before) {
            let deleted = self
                .client
                .execute_update(sql, transaction.clone())
                .await
                .map_err(|e| self.error(e, &format!("garbage collection of {}", table.name())))?;
            counts.add(table, u64::try_from(deleted).unwrap_or_default());
        }
        if let Some(transaction) = transaction {
            let committed = self.client.end_transaction(transaction, EndTransaction::Commit).await;
            if let Some(open) = open {
                open.forget();
            }
            committed.map_err(|e| self.error(e, "commit"))?;
        }
        Ok(counts)
    }
}

impl Sink for FlightSink {
    async fn existing(&mut self, ids: &[String]) -> Result<HashSet<String>, SinkError> {
        within(self.options.timeout, self.existing_within(ids)).await
    }

    async fn write(&mut self, batch: &CatalogBatch) -> Result<(), SinkError> {
        within(self.options.timeout, self.write_within(batch)).await
    }

    async fn indexed(&mut self, files: &[SourceFile]) -> Result<HashSet<String>, SinkError> {
        within(self.options.timeout, self.indexed_within(files)).await
    }

    fn max_row_bytes(&self) -> Option<usize> {
        Some(messages::max_row_bytes(self.options.max_message_bytes))
    }

    async fn recover(&mut self) -> Result<(), SinkError> {
        // A new connection (the old one may be dead without knowing it), and a new token (a
        // restarted server may have forgotten the one it issued).
        within(self.options.timeout, async {
            self.client = client(&self.options).await?;
            self.authenticate().await
        })
        .await
    }

    async fn collect_garbage(&mut self, orphans_before: &WriteId) -> Result<GcCounts, SinkError> {
        // A full pass over every table: no deadline of a batch write.
        self.collect_garbage_within(orphans_before).await
    }

    async fn stored(&mut self, by: SimilarBy, which: &IndexedFile) -> Result<Vec<Stored>, SinkError> {
        let sql = which.sql(by, &self.options.table_name(Table::Files));
        let mut newest = Newest::default();
        self.query_bound(sql, lookup::parameters([which.value()])?, |batch| newest.collect(batch)).await?;
        Ok(newest.finish())
    }

    async fn similar(
        &mut self,
        by: SimilarBy,
        vector: &[f32],
        k: usize,
        exclude_uri: Option<&str>,
    ) -> Result<Vec<Neighbour>, SinkError> {
        let column = by.column();
        let sql = format!(
            "SELECT file_id, source_uri, inspected_at, {column} FROM {} WHERE {column} IS NOT NULL",
            self.options.table_name(Table::Files)
        );
        let mut top = TopK::default();
        self.query(sql, |batch| {
            let ids = lookup::text_column(batch, 0, "files.file_id")?;
            let uris = lookup::text_column(batch, 1, "files.source_uri")?;
            let times = lookup::int_column(batch, 2, "files.inspected_at")?;
            let times = times.as_primitive::<arrow::datatypes::Int64Type>();
            let Some(vectors) = batch.columns().get(3) else {
                return Err(SinkError::Schema(format!("files.{column} is missing from the server's answer")));
            };
            for row in 0..batch.num_rows() {
                if let Some(stored) = wire::decode_vector(vectors.as_ref(), row)
                    && stored.len() == vector.len()
                {
                    top.offer(vector, ids.value(row), uris.value(row), times.value(row), &stored);
                }
            }
            Ok(())
        })
        .await?;
        Ok(top.finish(k, exclude_uri))
    }
}
