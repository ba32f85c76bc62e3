//! The embedded default: a DuckDB database file with real tables, vectors as `FLOAT[384]` /
//! `FLOAT[128]` arrays (so `array_cosine_similarity` works in the DuckDB CLI), and
//! `files.file_id` as primary key. A batch is appended to the four tables in one
//! transaction. DuckDB allows one writing process per file.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use arrow::datatypes::{DataType, Field};
use duckdb::Connection;

use super::lookup::IndexedQuery;
use super::{Neighbour, SimilarBy, Sink, SinkError};
use crate::catalog::{CatalogBatch, SourceFile, Table, is_file_id};

/// A DuckDB catalog file.
pub struct DuckdbSink {
    conn: Arc<Mutex<Connection>>,
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

fn create_table(table: Table) -> Result<String, SinkError> {
    let mut columns = Vec::new();
    for field in table.schema().fields() {
        let null = if field.is_nullable() { "" } else { " NOT NULL" };
        columns.push(format!("{} {}{null}", field.name(), column_type(field)?));
    }
    if table == Table::Files {
        columns.push("PRIMARY KEY (file_id)".into());
    }
    Ok(format!("CREATE TABLE IF NOT EXISTS {} ({})", table.name(), columns.join(", ")))
}

/// Fails with [`SinkError::Schema`] unless `table` has exactly the catalog's columns.
fn check_columns(conn: &Connection, table: Table) -> Result<(), SinkError> {
    let mut stmt = conn
        .prepare(
            "SELECT column_name, data_type FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
        )
        .map_err(failed("reading the schema"))?;
    let found: Vec<(String, String)> = stmt
        .query_map([table.name()], |row| Ok((row.get(0)?, row.get(1)?)))
        .and_then(Iterator::collect)
        .map_err(failed("reading the schema"))?;
    let mut expected = Vec::new();
    for field in table.schema().fields() {
        expected.push((field.name().clone(), column_type(field)?));
    }
    if found != expected {
        let show = |cols: &[(String, String)]| cols.iter().map(|(n, t)| format!("{n} {t}")).collect::<Vec<_>>().join(", ");
        return Err(SinkError::Schema(format!(
            "table `{}` has columns ({}), exrscan writes ({})",
            table.name(),
            show(&found),
            show(&expected)
        )));
    }
    Ok(())
}

/// `'id1','id2',…` after checking every id is a `file_id`.
pub(super) fn id_list(ids: &[String]) -> Result<String, SinkError> {
    let mut out = String::with_capacity(ids.len() * 67);
    for id in ids {
        if !is_file_id(id) {
            return Err(SinkError::Failed(format!("`{id}` is not a file_id")));
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push('\'');
        out.push_str(id);
        out.push('\'');
    }
    Ok(out)
}

impl DuckdbSink {
    /// Opens (creating if missing) the database at `path` and its four tables.
    pub fn open(path: &Path) -> Result<Self, SinkError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| SinkError::Config(format!("creating {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(|e| SinkError::Config(format!("opening {}: {e}", path.display())))?;
        for table in Table::ALL {
            conn.execute_batch(&create_table(table)?).map_err(failed("creating tables"))?;
            check_columns(&conn, table)?;
        }
        Ok(Self { conn: Arc::new(Mutex::new(conn)) })
    }

    /// Runs `f` on the connection in the blocking thread pool.
    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, SinkError> + Send + 'static,
    ) -> Result<T, SinkError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn)
        })
        .await
        .map_err(|e| SinkError::Failed(format!("DuckDB task: {e}")))?
    }
}

impl Sink for DuckdbSink {
    async fn existing(&mut self, ids: &[String]) -> Result<HashSet<String>, SinkError> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let sql = format!("SELECT file_id FROM files WHERE file_id IN ({})", id_list(ids)?);
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare(&sql).map_err(failed("existence check"))?;
            stmt.query_map([], |row| row.get::<_, String>(0))
                .and_then(Iterator::collect)
                .map_err(failed("existence check"))
        })
        .await
    }

    async fn write(&mut self, batch: &CatalogBatch) -> Result<(), SinkError> {
        let batch = batch.clone();
        self.with_conn(move |conn| {
            let tx = conn.transaction().map_err(failed("begin"))?;
            for table in Table::ALL {
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
        let query = IndexedQuery::new(Table::Files.name(), files);
        let Some(sql) = query.sql.clone() else { return Ok(HashSet::new()) };
        let batches = self
            .with_conn(move |conn| {
                let mut stmt = conn.prepare(&sql).map_err(failed("resume check"))?;
                Ok(stmt.query_arrow([]).map_err(failed("resume check"))?.collect::<Vec<_>>())
            })
            .await?;
        let mut found = HashSet::new();
        for batch in &batches {
            query.collect(batch, &mut found);
        }
        Ok(found)
    }

    async fn recover(&mut self) -> Result<(), SinkError> {
        Ok(())
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
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare(&sql).map_err(failed("similarity query"))?;
            stmt.query_map([exclude], |row| {
                Ok(Neighbour { file_id: row.get(0)?, source_uri: row.get(1)?, score: row.get(2)? })
            })
            .and_then(Iterator::collect)
            .map_err(failed("similarity query"))
        })
        .await
    }
}
