//! `exrscan sink-check`: a round trip through a scratch table in the sink's schema.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use reqwest::Method;

use super::client::{Answer, Call};
use super::query::{Filter, Select};
use super::{NARROW_LIMIT_ROWS, VastSink, messages};
use crate::catalog::WriteId;
use crate::sink::SinkError;

impl VastSink {
    /// `call` (given the transaction id) in a transaction of its own.
    async fn alone(&mut self, call: impl FnOnce(u64) -> Call) -> Result<Answer, SinkError> {
        let txid = self.begin().await?;
        let answer = self.client.send(call(txid)).await;
        self.end(txid, answer).await
    }

    /// Creates a scratch table in the sink's schema, inserts a row, reads it back with a
    /// pushed-down predicate and drops the table (also when a step between failed). The
    /// one-line report names the server's version.
    pub async fn check(&mut self) -> Result<String, SinkError> {
        let started = Instant::now();
        let version = self.client.version().await?;
        let name = format!("{}sink_check_{}", self.options.table_prefix, WriteId::new().as_str());
        let path = self.options.table_path(&name);
        let schema = Arc::new(Schema::new(vec![
            Field::new("file_id", DataType::Utf8, false),
            Field::new("size_bytes", DataType::Int64, false),
        ]));
        let token = format!("exrscan-{name}");
        let row = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(vec![token.clone()])), Arc::new(Int64Array::from(vec![42]))],
        )
        .map_err(|e| SinkError::Failed(format!("the check's row: {e}")))?;
        let create = messages::schema_message(&schema)?;
        self.alone(|txid| Call::new(Method::POST, path.clone(), "table", txid).body(create)).await?;

        let mut read_back = Vec::new();
        let insert = messages::ipc_stream(&row)?;
        let mut result =
            self.alone(|txid| Call::new(Method::POST, path.clone(), "rows", txid).body(insert)).await.map(drop);
        if result.is_ok() {
            let tokens = [token.as_str()];
            let select = Select {
                table: schema,
                path: path.clone(),
                columns: &["file_id", "size_bytes"],
                filter: Filter::In("file_id", &tokens),
                limit_rows: NARROW_LIMIT_ROWS,
            };
            let txid = self.begin().await?;
            let selected = select.run(&self.client, txid, |batch| read_back.push(batch.clone())).await;
            result = self.end(txid, selected).await;
        }
        let dropped = self.alone(|txid| Call::new(Method::DELETE, path, "table", txid)).await;
        result?;
        dropped?;

        let rows: usize = read_back.iter().map(RecordBatch::num_rows).sum();
        let size = read_back.first().and_then(|b| b.column(1).as_primitive_opt::<Int64Type>().map(|v| v.value(0)));
        if rows != 1 || size != Some(42) {
            return Err(SinkError::Failed(format!(
                "the scratch table {name} gave back {rows} rows ({size:?}) instead of the one inserted (42)"
            )));
        }
        Ok(format!(
            "ok: VAST {version} at {}, bucket {}, schema {}: created, wrote, read back and dropped {name} in {:.2}s",
            self.options.endpoint(),
            self.options.bucket,
            self.options.schema,
            started.elapsed().as_secs_f64()
        ))
    }
}
