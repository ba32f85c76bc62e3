//! The embedded default: a DuckDB database file with real tables, vectors as `FLOAT[384]` /
//! `FLOAT[128]` arrays (so `array_cosine_similarity` works in the DuckDB CLI), and
//! `files.file_id` as primary key. A batch is appended to the four tables in one
//! transaction, `files` last; the `indexed_*` views are those of every sink
//! ([`canonical`](super::canonical)). DuckDB allows one writing process per file.
//!
//! Two settings suit a writer that appends a batch at a time (measured in
//! `docs/benchmarks.md`): one DuckDB thread, because each append is a small pipeline whose
//! scheduling over more threads costs more CPU than it saves, and a 256 MiB checkpoint
//! threshold, so that rows are compressed into the file once in large row groups rather than
//! re-compressed by a checkpoint every few batches (the default is 16 MB).
//!
//! The connection lives on a thread of its own, which runs every statement and closes the
//! catalog when the sink is dropped. DuckDB's memory is then allocated and freed by one
//! thread: glibc gives each thread that allocates its own arena and keeps what is freed in it,
//! so statements spread over the blocking pool's threads held a copy of DuckDB's working
//! memory per thread (measured in `docs/benchmarks.md`).

use std::collections::HashSet;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use duckdb::Connection;
use duckdb::types::Value;

use super::canonical::{self, GcCounts, SqlNames, ViewDdl};
use super::lookup::IndexedQuery;
use super::similar::Newest;
use super::{IndexedFile, Neighbour, SimilarBy, Sink, SinkError, Stored};
use crate::catalog::schema::WRITE_ID;
use crate::catalog::{CatalogBatch, REMOVALS, REMOVALS_KEY, Removal, SourceFile, Table, WriteId, removals_schema};

/// DuckDB threads for appends and lookups; [`Sink::similar`] scans with every core.
const WRITER_THREADS: usize = 1;
/// Write-ahead log size that triggers a checkpoint.
const CHECKPOINT_THRESHOLD: &str = "256MiB";

/// DuckDB's prebuilt static library (a build without the feature `bundled-duckdb`, as
/// `make test` links it) leaves its `core_functions` extension (`list_*`, `string_agg`, date
/// parts…) to the program, which registers it once before opening a database; the bundled
/// build registers it itself.
#[cfg(not(feature = "bundled-duckdb"))]
fn register_core_functions() {
    use std::ffi::c_void;
    unsafe extern "C" {
        fn duckdb_register_static_extension(describe: unsafe extern "C" fn(*mut c_void) -> i32) -> i32;
        fn duckdb_extension_core_functions_describe(descriptor: *mut c_void) -> i32;
    }
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        // SAFETY: both are DuckDB's C functions with these signatures
        // (duckdb_static_extension.h); the describe function is DuckDB's own.
        let failed = unsafe { duckdb_register_static_extension(duckdb_extension_core_functions_describe) };
        if failed != 0 {
            tracing::warn!("DuckDB refused to register its core_functions extension");
        }
    });
}

#[cfg(feature = "bundled-duckdb")]
fn register_core_functions() {}

/// A statement (or several) for the connection's thread to run.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// A DuckDB catalog file, open on a thread of its own. Dropping it closes the catalog
/// (DuckDB checkpoints what its log holds into the file) and waits for that to end.
pub struct DuckdbSink {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

fn failed(context: &str) -> impl Fn(duckdb::Error) -> SinkError + '_ {
    move |e| SinkError::Failed(format!("DuckDB {context}: {e}"))
}

/// The DuckDB type of a catalog column, as `information_schema.columns.data_type` spells it.
fn column_type(field: &Field) -> Result<String, SinkError> {
    Ok(match field.data_type() {
        DataType::Utf8 => "VARCHAR".into(),
        DataType::Int32 => "INTEGER".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Timestamp(_, Some(_)) => "TIMESTAMP WITH TIME ZONE".into(),
        DataType::FixedSizeList(item, n) if item.data_type() == &DataType::Float32 => format!("FLOAT[{n}]"),
        other => return Err(SinkError::Config(format!("no DuckDB type for {other}"))),
    })
}

fn create_table(name: &str, schema: &Schema, key: &[&str]) -> Result<String, SinkError> {
    let mut columns = Vec::new();
    for field in schema.fields() {
        let null = if field.is_nullable() { "" } else { " NOT NULL" };
        columns.push(format!("{} {}{null}", field.name(), column_type(field)?));
    }
    if !key.is_empty() {
        columns.push(format!("PRIMARY KEY ({})", key.join(", ")));
    }
    Ok(format!("CREATE TABLE IF NOT EXISTS {name} ({})", columns.join(", ")))
}

/// A catalog table's name, schema and primary key (`files.file_id`; none for the others).
fn table_def(table: Table) -> (&'static str, SchemaRef, &'static [&'static str]) {
    let key: &[&str] = if table == Table::Files { &["file_id"] } else { &[] };
    (table.name(), table.schema(), key)
}

/// Fails with [`SinkError::Schema`] unless table `name` has exactly the columns of `schema`.
fn check_columns(conn: &Connection, name: &str, schema: &Schema) -> Result<(), SinkError> {
    let mut stmt = conn
        .prepare(
            "SELECT column_name, data_type FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
        )
        .map_err(failed("reading the schema"))?;
    let found: Vec<(String, String)> = stmt
        .query_map([name], |row| Ok((row.get(0)?, row.get(1)?)))
        .and_then(Iterator::collect)
        .map_err(failed("reading the schema"))?;
    let mut expected = Vec::new();
    for field in schema.fields() {
        expected.push((field.name().clone(), column_type(field)?));
    }
    if found != expected {
        let show =
            |cols: &[(String, String)]| cols.iter().map(|(n, t)| format!("{n} {t}")).collect::<Vec<_>>().join(", ");
        return Err(SinkError::Schema(format!(
            "table `{name}` has columns ({}), exrscan writes ({})",
            show(&found),
            show(&expected)
        )));
    }
    Ok(())
}

/// `values` as one `VARCHAR[]` parameter: a lookup binds its keys instead of spelling them
/// into the SQL, so its statement is parsed once per connection (`prepare_cached`).
fn text_list<'a>(values: impl IntoIterator<Item = &'a str>) -> Value {
    Value::List(values.into_iter().map(|v| Value::Text(v.to_owned())).collect())
}

/// The index on `files.source_uri`: a lookup of one URI (`WHERE source_uri = …`) takes
/// under a millisecond at a million files. The resume check asks for ranges instead, which
/// DuckDB serves from the column's zonemaps ([`DuckdbSink::indexed`]).
const SOURCE_URI_INDEX: &str = "CREATE INDEX IF NOT EXISTS files_source_uri ON files (source_uri)";

impl DuckdbSink {
    /// Opens (creating if missing) the database at `path` and its four tables, and hands the
    /// connection to a new thread that keeps it.
    pub fn open(path: &Path) -> Result<Self, SinkError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| SinkError::Config(format!("creating {}: {e}", dir.display())))?;
        }
        let mut conn = connect(path)?;
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("duckdb".into())
            .spawn(move || {
                for job in queue {
                    job(&mut conn);
                }
            })
            .map_err(|e| SinkError::Failed(format!("starting the DuckDB thread: {e}")))?;
        Ok(Self { jobs: Some(jobs), thread: Some(thread) })
    }

    /// Runs `f` on the connection's thread.
    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, SinkError> + Send + 'static,
    ) -> Result<T, SinkError> {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = done_tx.send(f(conn));
        });
        let gone = || SinkError::Failed("the DuckDB thread has stopped".into());
        self.jobs.as_ref().ok_or_else(gone)?.send(job).map_err(|_| gone())?;
        done_rx.await.map_err(|_| gone())?
    }
}

impl Drop for DuckdbSink {
    fn drop(&mut self) {
        // The thread's loop ends with the queue; the connection closes as it returns.
        self.jobs.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the DuckDB thread panicked; the catalog was not closed cleanly");
        }
    }
}

/// Runs one SQL statement on the catalog at `path`, opened read-only (so that it fails,
/// rather than waits, while a scan writes the file), and returns the result's schema and rows.
pub fn query(path: &Path, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>), SinkError> {
    register_core_functions();
    let config = duckdb::Config::default().access_mode(duckdb::AccessMode::ReadOnly).map_err(failed("settings"))?;
    let conn = Connection::open_with_flags(path, config)
        .map_err(|e| SinkError::Config(format!("opening {} read-only: {e}", path.display())))?;
    let mut stmt = conn.prepare(sql).map_err(failed("query"))?;
    let result = stmt.query_arrow([]).map_err(failed("query"))?;
    let schema = result.get_schema();
    Ok((schema, result.collect()))
}

/// Opens the database at `path` with the writer's settings, checks its four tables (adding
/// the write id column to a catalog written before it existed) and `removals`, and creates
/// the views.
fn connect(path: &Path) -> Result<Connection, SinkError> {
    register_core_functions();
    let conn = Connection::open(path).map_err(|e| SinkError::Config(format!("opening {}: {e}", path.display())))?;
    conn.execute_batch(&format!("SET threads = {WRITER_THREADS}; SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'"))
        .map_err(failed("settings"))?;
    for table in Table::ALL {
        let (name, schema, key) = table_def(table);
        conn.execute_batch(&create_table(name, &schema, key)?).map_err(failed("creating tables"))?;
        add_write_id(&conn, table)?;
        check_columns(&conn, name, &schema)?;
    }
    conn.execute_batch(SOURCE_URI_INDEX).map_err(failed("indexing files.source_uri"))?;
    let removals = removals_schema();
    conn.execute_batch(&create_table(REMOVALS, &removals, &REMOVALS_KEY)?).map_err(failed("creating tables"))?;
    check_columns(&conn, REMOVALS, &removals)?;
    for view in canonical::create_views(&SqlNames::default(), ViewDdl::OrReplace) {
        conn.execute_batch(&view).map_err(failed("creating views"))?;
    }
    Ok(conn)
}

/// Adds `write_id` to a table of a catalog from before write ids, as the last column. Its
/// rows get the empty id, which sorts first: DuckDB always had one writer, so each file
/// has one complete copy.
fn add_write_id(conn: &Connection, table: Table) -> Result<(), SinkError> {
    let mut stmt = conn
        .prepare(
            "SELECT count(*) FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = ? AND column_name = ?",
        )
        .map_err(failed("reading the schema"))?;
    let found: i64 =
        stmt.query_row([table.name(), WRITE_ID], |row| row.get(0)).map_err(failed("reading the schema"))?;
    if found == 0 {
        tracing::info!(table = table.name(), "adding the write_id column to a catalog from an earlier exrscan");
        conn.execute_batch(&format!("ALTER TABLE {} ADD COLUMN {WRITE_ID} VARCHAR DEFAULT ''", table.name()))
            .map_err(failed("adding write_id"))?;
    }
    Ok(())
}

/// A UTC timestamp as DuckDB casts it to `TIMESTAMPTZ` (microseconds, `Z`).
fn rfc3339(time: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The parameters of a `removals` row; the last (`recorded_at`) is set per transaction.
fn removal_row(removal: &Removal) -> [Value; 7] {
    let text = |s: &str| Value::Text(s.to_owned());
    [
        text(&removal.source_uri),
        text(&removal.bucket),
        text(&removal.key),
        text(&removal.sequencer),
        text(&removal.event_name),
        removal.event_time.map_or(Value::Null, |t| Value::Text(rfc3339(t))),
        Value::Null,
    ]
}

impl Sink for DuckdbSink {
    async fn existing(&mut self, ids: &[String]) -> Result<HashSet<String>, SinkError> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let ids = text_list(ids.iter().map(String::as_str));
        self.with_conn(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT file_id FROM files WHERE file_id IN (SELECT unnest(?::VARCHAR[]))")
                .map_err(failed("existence check"))?;
            stmt.query_map([ids], |row| row.get::<_, String>(0))
                .and_then(Iterator::collect)
                .map_err(failed("existence check"))
        })
        .await
    }

    async fn write(&mut self, batch: &CatalogBatch) -> Result<(), SinkError> {
        let batch = batch.clone();
        self.with_conn(move |conn| {
            let tx = conn.transaction().map_err(failed("begin"))?;
            for table in Table::WRITE_ORDER {
                let rows = batch.table(table);
                if rows.num_rows() == 0 {
                    continue;
                }
                let mut appender = tx.appender(table.name()).map_err(failed("appender"))?;
                appender.append_record_batch(rows.clone()).map_err(failed(table.name()))?;
                appender.flush().map_err(failed(table.name()))?;
            }
            // Dropping `tx` without commit rolls back.
            tx.commit().map_err(failed("commit"))
        })
        .await
    }

    async fn indexed(&mut self, files: &[SourceFile]) -> Result<HashSet<String>, SinkError> {
        let query = IndexedQuery::new(files);
        let Some((sql, [first, last])) = query.range("files") else {
            return Ok(HashSet::new());
        };
        // One range rather than a placeholder per URI: DuckDB skips the row groups whose
        // zonemaps lie outside it (a scan writes its rows in listing order), while each
        // key of an `IN` list costs a lookup in `files_source_uri` (~25 µs).
        let (first, last) = (first.to_owned(), last.to_owned());
        let batches = self
            .with_conn(move |conn| {
                let mut stmt = conn.prepare_cached(&sql).map_err(failed("resume check"))?;
                let rows = stmt.query_arrow([first, last]).map_err(failed("resume check"))?;
                Ok(rows.collect::<Vec<_>>())
            })
            .await?;
        let mut found = HashSet::new();
        for batch in &batches {
            query.collect(batch, &mut found)?;
        }
        Ok(found)
    }

    async fn record_removals(&mut self, removals: &[Removal]) -> Result<(), SinkError> {
        let rows: Vec<[Value; 7]> = removals.iter().map(removal_row).collect();
        let recorded_at = Value::Text(rfc3339(std::time::SystemTime::now()));
        self.with_conn(move |conn| {
            let tx = conn.transaction().map_err(failed("begin"))?;
            {
                let mut stmt = tx
                    .prepare_cached(&format!(
                        "INSERT INTO {REMOVALS} VALUES (?, ?, ?, ?, ?, ?::TIMESTAMPTZ, ?::TIMESTAMPTZ) \
                         ON CONFLICT DO NOTHING"
                    ))
                    .map_err(failed("recording removals"))?;
                for [uri, bucket, key, sequencer, name, time, _] in rows {
                    let params = [uri, bucket, key, sequencer, name, time, recorded_at.clone()];
                    stmt.execute(duckdb::params_from_iter(params)).map_err(failed("recording removals"))?;
                }
            }
            tx.commit().map_err(failed("commit"))
        })
        .await
    }

    async fn recover(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    async fn collect_garbage(&mut self, orphans_before: &WriteId) -> Result<GcCounts, SinkError> {
        let statements = canonical::gc_statements(&SqlNames::default(), orphans_before);
        self.with_conn(move |conn| {
            let tx = conn.transaction().map_err(failed("begin"))?;
            let mut counts = GcCounts::default();
            for (table, sql) in statements {
                let deleted = tx.execute(&sql, []).map_err(failed("garbage collection"))?;
                counts.add(table, deleted as u64);
            }
            tx.commit().map_err(failed("commit"))?;
            Ok(counts)
        })
        .await
    }

    async fn stored(&mut self, by: SimilarBy, which: &IndexedFile) -> Result<Vec<Stored>, SinkError> {
        let sql = which.sql(by, "files");
        let value = which.value().to_owned();
        let batches = self
            .with_conn(move |conn| {
                let mut stmt = conn.prepare(&sql).map_err(failed("vector lookup"))?;
                Ok(stmt.query_arrow([value]).map_err(failed("vector lookup"))?.collect::<Vec<_>>())
            })
            .await?;
        let mut newest = Newest::default();
        for batch in &batches {
            newest.collect(batch)?;
        }
        Ok(newest.finish())
    }

    async fn similar(
        &mut self,
        by: SimilarBy,
        vector: &[f32],
        k: usize,
        exclude_uri: Option<&str>,
    ) -> Result<Vec<Neighbour>, SinkError> {
        if vector.len() != by.dims() || vector.iter().any(|v| !v.is_finite()) {
            return Err(SinkError::Failed(format!("query vector must be {} finite floats", by.dims())));
        }
        let literal = vector.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(",");
        let column = by.column();
        let dims = by.dims();
        let sql = format!(
            "SELECT file_id, source_uri, array_cosine_similarity({column}, [{literal}]::FLOAT[{dims}]) AS score \
             FROM files WHERE {column} IS NOT NULL AND source_uri IS DISTINCT FROM ? \
             QUALIFY row_number() OVER (PARTITION BY source_uri ORDER BY inspected_at DESC, file_id) = 1 \
             ORDER BY score DESC, source_uri LIMIT {k}"
        );
        let exclude = exclude_uri.map(str::to_owned);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.with_conn(move |conn| {
            // A full scan of the vectors: worth every core, unlike the appends.
            conn.execute_batch(&format!("SET threads = {cores}")).map_err(failed("settings"))?;
            let mut stmt = conn.prepare(&sql).map_err(failed("similarity query"))?;
            let found = stmt
                .query_map([exclude], |row| {
                    Ok(Neighbour { file_id: row.get(0)?, source_uri: row.get(1)?, score: row.get(2)? })
                })
                .and_then(Iterator::collect)
                .map_err(failed("similarity query"));
            conn.execute_batch(&format!("SET threads = {WRITER_THREADS}")).map_err(failed("settings"))?;
            found
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn setting(sink: &DuckdbSink, name: &'static str) -> Result<String, SinkError> {
        sink.with_conn(move |conn| {
            conn.query_row(&format!("SELECT current_setting('{name}')::VARCHAR"), [], |row| row.get(0))
                .map_err(failed("reading a setting"))
        })
        .await
    }

    #[tokio::test]
    async fn writes_on_its_thread_single_threaded_and_similarity_restores_it() -> Result<(), SinkError> {
        let dir = tempfile::tempdir().map_err(|e| SinkError::Config(e.to_string()))?;
        let mut sink = DuckdbSink::open(&dir.path().join("c.duckdb"))?;
        assert_eq!(setting(&sink, "threads").await?, WRITER_THREADS.to_string());
        assert_eq!(setting(&sink, "checkpoint_threshold").await?, "256.0 MiB");
        let thread = sink.with_conn(|_| Ok(std::thread::current().name().map(str::to_owned))).await?;
        assert_eq!(thread.as_deref(), Some("duckdb"), "statements run on the connection's thread");
        let found = sink.similar(SimilarBy::Metadata, &vec![0.0; SimilarBy::Metadata.dims()], 3, None).await?;
        assert!(found.is_empty(), "an empty catalog has no neighbours: {found:?}");
        assert_eq!(setting(&sink, "threads").await?, WRITER_THREADS.to_string());
        assert_eq!(sink.existing(&["a".repeat(64)]).await?, HashSet::new());
        Ok(())
    }

    #[tokio::test]
    async fn removals_are_recorded_once_per_uri_and_sequencer() -> Result<(), SinkError> {
        let dir = tempfile::tempdir().map_err(|e| SinkError::Config(e.to_string()))?;
        let mut sink = DuckdbSink::open(&dir.path().join("c.duckdb"))?;
        let removal = |sequencer: &str| Removal {
            source_uri: "s3://b/a.exr".into(),
            bucket: "b".into(),
            key: "a.exr".into(),
            sequencer: sequencer.into(),
            event_name: "ObjectRemoved:Delete".into(),
            event_time: Some(std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_796_518_923_456_789)),
        };
        sink.record_removals(&[removal("01"), removal("02")]).await?;
        // Redelivered: nothing new.
        sink.record_removals(&[removal("02")]).await?;
        let rows = sink
            .with_conn(|conn| {
                let mut stmt = conn
                    .prepare("SELECT sequencer, epoch_us(event_time) FROM removals ORDER BY sequencer")
                    .map_err(failed("reading removals"))?;
                stmt.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))
                    .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                    .map_err(failed("reading removals"))
            })
            .await?;
        assert_eq!(rows, vec![("01".into(), 1_796_518_923_456_789), ("02".into(), 1_796_518_923_456_789)]);
        Ok(())
    }
}
