//! QueryData (`GET …/<table>?data`): the compute-IR request with the predicate pushed down,
//! and the framed answer, one Arrow IPC stream per projected column and sub-split.
//!
//! Request: a `Relation` whose `Source` carries the queried columns as an Arrow `Schema`
//! (the projected ones, then the predicate's others; timestamps without their zone), the
//! filter — always `and(or(…), …)`, one column per `or` group — and the projected leaves by
//! depth-first position. Answer: chunks of `u32 stream id, u64 next row id, one IPC
//! message`; each column of a sub-split arrives as its own IPC stream, and once all have
//! arrived the sub-split's rows are complete up to that next row id. The query repeats from
//! those row ids until every sub-split says [`INVALID_ROW_ID`].

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::reader::StreamReader;
use flatbuffers::{FlatBufferBuilder, WIPOffset};
use reqwest::Method;

use super::client::{Call, Client, INVALID_ROW_ID, MAX_REQUEST_BYTES};
use super::messages::generated::org::apache::arrow::computeir::flatbuf as ir;
use super::messages::generated::org::apache::arrow::flatbuf as arrow_fb;
use crate::sink::SinkError;

/// The hidden row id column VAST answers when it is queried.
pub const ROW_ID: &str = "$row_id";

/// Sub-splits of one query (the SDK's default).
const SUB_SPLITS: u32 = 4;
/// Row groups per sub-split (the SDK's default).
const ROW_GROUPS_PER_SUB_SPLIT: u32 = 8;
/// Stream ids with a meaning of their own.
const KEEP_ALIVE: u32 = 0xFFFF_FFFF;
const COMPLETED: u32 = 0xFFFF_FFFE;
const FAILED: u32 = 0xFFFF_FFFD;

/// A pushed-down predicate.
#[derive(Debug, Clone, Copy)]
pub enum Filter<'a> {
    /// Every row.
    All,
    /// A text column equal to one of the values (`isin`).
    In(&'a str, &'a [&'a str]),
}

impl Filter<'_> {
    fn column(&self) -> Option<&str> {
        match self {
            Filter::All => None,
            Filter::In(column, _) => Some(column),
        }
    }
}

/// A select of some columns of one table.
pub struct Select<'a> {
    /// The table's columns as the catalog created them.
    pub table: SchemaRef,
    /// URL path of the table.
    pub path: String,
    /// Projected columns, in order; [`ROW_ID`] may be one.
    pub columns: &'a [&'a str],
    /// The predicate.
    pub filter: Filter<'a>,
    /// Rows per sub-split and answer (`tabular-limit-rows`): bounds one answer's size.
    pub limit_rows: u32,
}

fn malformed(what: impl std::fmt::Display) -> SinkError {
    SinkError::Failed(format!("malformed QueryData answer: {what}"))
}

/// A column as the request's schema carries it: no metadata, timestamps without zone.
fn request_field(field: &Field) -> Field {
    let data_type = match field.data_type() {
        DataType::Timestamp(unit, _) => DataType::Timestamp(*unit, None),
        other => other.clone(),
    };
    Field::new(field.name(), data_type, field.is_nullable())
}

/// Nodes of a field, itself included: its share of the depth-first positions.
fn nodes(data_type: &DataType) -> u32 {
    match data_type {
        DataType::FixedSizeList(item, _) | DataType::List(item) | DataType::LargeList(item) => {
            1 + nodes(item.data_type())
        }
        DataType::Struct(fields) => 1 + fields.iter().map(|f| nodes(f.data_type())).sum::<u32>(),
        _ => 1,
    }
}

impl Select<'_> {
    /// The queried fields (projection, then the predicate's other column) and the answer's schema.
    fn fields(&self) -> Result<(Vec<Field>, SchemaRef), SinkError> {
        let field = |name: &str| -> Result<Field, SinkError> {
            if name == ROW_ID {
                return Ok(Field::new(ROW_ID, DataType::UInt64, true));
            }
            self.table
                .field_with_name(name)
                .map(request_field)
                .map_err(|_| SinkError::Schema(format!("no column {name} in {}", self.path)))
        };
        let mut queried = self.columns.iter().map(|c| field(c)).collect::<Result<Vec<_>, _>>()?;
        let answer = Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| match *c {
                    ROW_ID => Ok(Field::new(ROW_ID, DataType::UInt64, true)),
                    c => self.table.field_with_name(c).cloned().map_err(|e| SinkError::Schema(e.to_string())),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ));
        if let Some(column) = self.filter.column()
            && !self.columns.contains(&column)
        {
            queried.push(field(column)?);
        }
        Ok((queried, answer))
    }

    /// The request body and the answer's schema.
    pub fn request(&self) -> Result<(Vec<u8>, SchemaRef), SinkError> {
        let (queried, answer) = self.fields()?;
        let mut positions = Vec::with_capacity(queried.len());
        let mut next = 0;
        for field in &queried {
            positions.push(next);
            next += nodes(field.data_type());
        }
        let position = |name: &str| queried.iter().position(|f| f.name() == name).map(|i| positions[i]);
        let mut fbb = FlatBufferBuilder::new();
        let name = fbb.create_string("");
        let schema = arrow::ipc::convert::schema_to_fb_offset(&mut fbb, &Schema::new(queried.clone()));
        // The Arrow `Schema` table arrow-ipc built, referenced through the declared stub.
        let schema: WIPOffset<arrow_fb::Schema> = WIPOffset::new(schema.value());
        let groups = match self.filter {
            Filter::All => Vec::new(),
            Filter::In(column, values) => {
                let field = queried.iter().find(|f| f.name() == column).ok_or_else(|| malformed(column))?;
                if field.data_type() != &DataType::Utf8 {
                    return Err(SinkError::Schema(format!("{column} is {}, not text", field.data_type())));
                }
                let at = position(column).ok_or_else(|| malformed(column))?;
                let nullable = field.is_nullable();
                let equals: Vec<_> = values
                    .iter()
                    .map(|value| {
                        let col = column_ref(&mut fbb, at);
                        let lit = string_literal(&mut fbb, value, nullable);
                        call(&mut fbb, "equal", &[col, lit])
                    })
                    .collect();
                vec![call(&mut fbb, "or", &equals)]
            }
        };
        let filter = call(&mut fbb, "and", &groups);
        let mut projection = Vec::new();
        for column in self.columns {
            let i = queried.iter().position(|f| f.name() == *column).ok_or_else(|| malformed(column))?;
            // A column's leaves: a scalar is its own, a fixed-size list its `item`.
            let leaf = positions[i] + nodes(queried[i].data_type()) - 1;
            projection.push(ir::FieldIndex::create(&mut fbb, &ir::FieldIndexArgs { position: leaf }));
        }
        let projection = fbb.create_vector(&projection);
        let source = ir::Source::create(
            &mut fbb,
            &ir::SourceArgs {
                name: Some(name),
                filter: Some(filter),
                schema: Some(schema),
                projection: Some(projection),
            },
        );
        let relation = ir::Relation::create(
            &mut fbb,
            &ir::RelationArgs { impl_type: ir::RelationImpl::Source, impl_: Some(source.as_union_value()) },
        );
        fbb.finish(relation, None);
        let body = fbb.finished_data().to_vec();
        if body.len() > MAX_REQUEST_BYTES * 9 / 10 {
            return Err(SinkError::Failed(format!("a QueryData request of {} bytes is too large", body.len())));
        }
        Ok((body, answer))
    }

    /// Runs the select in transaction `txid`, handing each complete set of rows to `each`.
    pub async fn run(&self, client: &Client, txid: u64, mut each: impl FnMut(&RecordBatch)) -> Result<(), SinkError> {
        let (body, answer) = self.request()?;
        let mut starts: BTreeMap<u32, u64> = (0..SUB_SPLITS).map(|s| (s, 0)).collect();
        while starts.values().any(|&s| s != INVALID_ROW_ID) {
            let mut call = Call::new(Method::GET, self.path.clone(), "data", txid)
                .header("tabular-split", format!("0,1,{ROW_GROUPS_PER_SUB_SPLIT}"))
                .header("tabular-num-of-subsplits", SUB_SPLITS.to_string())
                .header("tabular-request-format", "string")
                .header("tabular-response-format", "string")
                .header("tabular-enable-sorted-projections", "True")
                .header("tabular-limit-rows", self.limit_rows.to_string())
                .body(body.clone());
            for (sub, start) in &starts {
                call = call.header(start_header(*sub), format!("{sub},{start}"));
            }
            let reply = client.send(call).await?;
            let before = starts.clone();
            parse(&reply.body, &answer, &mut starts, &mut each)?;
            if starts == before {
                return Err(malformed("no sub-split advanced"));
            }
        }
        Ok(())
    }
}

/// `tabular-start-row-id-<sub>` for the sub-splits of [`SUB_SPLITS`].
fn start_header(sub: u32) -> &'static str {
    match sub {
        0 => "tabular-start-row-id-0",
        1 => "tabular-start-row-id-1",
        2 => "tabular-start-row-id-2",
        _ => "tabular-start-row-id-3",
    }
}

fn expression(
    fbb: &mut FlatBufferBuilder<'static>,
    impl_type: ir::ExpressionImpl,
    value: WIPOffset<flatbuffers::UnionWIPOffset>,
) -> WIPOffset<ir::Expression<'static>> {
    ir::Expression::create(fbb, &ir::ExpressionArgs { impl_type, impl_: Some(value) })
}

fn column_ref(fbb: &mut FlatBufferBuilder<'static>, position: u32) -> WIPOffset<ir::Expression<'static>> {
    let index = ir::FieldIndex::create(fbb, &ir::FieldIndexArgs { position });
    let field_ref = ir::FieldRef::create(
        fbb,
        &ir::FieldRefArgs { ref_type: ir::Deref::FieldIndex, ref_: Some(index.as_union_value()) },
    );
    expression(fbb, ir::ExpressionImpl::FieldRef, field_ref.as_union_value())
}

fn string_literal(
    fbb: &mut FlatBufferBuilder<'static>,
    value: &str,
    nullable: bool,
) -> WIPOffset<ir::Expression<'static>> {
    let text = fbb.create_string(value);
    let string = ir::StringLiteral::create(fbb, &ir::StringLiteralArgs { value: Some(text) });
    // The literal's type: an unnamed Utf8 field with the column's nullability.
    let utf8 = arrow::ipc::Utf8Builder::new(fbb).finish();
    let mut field = arrow::ipc::FieldBuilder::new(fbb);
    field.add_nullable(nullable);
    field.add_type_type(arrow::ipc::Type::Utf8);
    field.add_type_(utf8.as_union_value());
    let field: WIPOffset<arrow_fb::Field> = WIPOffset::new(field.finish().value());
    let literal = ir::Literal::create(
        fbb,
        &ir::LiteralArgs {
            impl_type: ir::LiteralImpl::StringLiteral,
            impl_: Some(string.as_union_value()),
            type_: Some(field),
        },
    );
    expression(fbb, ir::ExpressionImpl::Literal, literal.as_union_value())
}

fn call(
    fbb: &mut FlatBufferBuilder<'static>,
    name: &str,
    arguments: &[WIPOffset<ir::Expression<'static>>],
) -> WIPOffset<ir::Expression<'static>> {
    let name = fbb.create_string(name);
    let arguments = fbb.create_vector(arguments);
    let call = ir::Call::create(fbb, &ir::CallArgs { name: Some(name), arguments: Some(arguments) });
    expression(fbb, ir::ExpressionImpl::Call, call.as_union_value())
}

/// A sub-split's columns as they arrive.
#[derive(Default)]
struct SubSplit {
    /// The IPC stream of the column arriving now.
    stream: Vec<u8>,
    /// Columns complete so far.
    columns: Vec<ArrayRef>,
}

/// Reads `n` bytes at `*at`.
fn take<'a>(body: &'a [u8], at: &mut usize, n: usize) -> Result<&'a [u8], SinkError> {
    let bytes = body.get(*at..*at + n).ok_or_else(|| malformed("truncated"))?;
    *at += n;
    Ok(bytes)
}

fn u32_at(body: &[u8], at: &mut usize) -> Result<u32, SinkError> {
    let bytes: [u8; 4] = take(body, at, 4)?.try_into().map_err(|_| malformed("truncated"))?;
    Ok(u32::from_le_bytes(bytes))
}

/// One IPC message starting at `*at` (continuation, length, flatbuffer, body); whether it
/// is the end-of-stream marker.
fn message<'a>(body: &'a [u8], at: &mut usize) -> Result<(&'a [u8], bool), SinkError> {
    let start = *at;
    if u32_at(body, at)? != 0xFFFF_FFFF {
        return Err(malformed("an IPC message without its continuation marker"));
    }
    let length = u32_at(body, at)? as usize;
    if length == 0 {
        return Ok((&body[start..*at], true));
    }
    let meta = take(body, at, length)?;
    let header = arrow::ipc::root_as_message(meta).map_err(malformed)?;
    let body_length = usize::try_from(header.bodyLength()).map_err(|_| malformed("negative body length"))?;
    take(body, at, body_length)?;
    Ok((&body[start..*at], false))
}

/// Decodes one answer, updating each sub-split's next row id once its rows are complete.
fn parse(
    body: &[u8],
    answer: &SchemaRef,
    starts: &mut BTreeMap<u32, u64>,
    each: &mut impl FnMut(&RecordBatch),
) -> Result<(), SinkError> {
    let mut subs: BTreeMap<u32, SubSplit> = BTreeMap::new();
    let mut at = 0;
    while at < body.len() {
        let stream_id = u32_at(body, &mut at)?;
        match stream_id {
            KEEP_ALIVE => continue,
            COMPLETED => break,
            FAILED => return Err(SinkError::Transient("the server failed the query (QueryData failed stream)".into())),
            _ => {}
        }
        let next_row_id = u64::from_le_bytes(take(body, &mut at, 8)?.try_into().map_err(|_| malformed("truncated"))?);
        let (bytes, end) = message(body, &mut at)?;
        let sub = subs.entry(stream_id).or_default();
        sub.stream.extend_from_slice(bytes);
        if !end {
            continue;
        }
        let reader = StreamReader::try_new(Cursor::new(std::mem::take(&mut sub.stream)), None).map_err(malformed)?;
        let batches = reader.collect::<Result<Vec<_>, _>>().map_err(malformed)?;
        let column = match batches.as_slice() {
            [] => return Err(malformed("a column stream without a batch")),
            [one] => one.column(0).clone(),
            many => {
                let parts: Vec<&dyn arrow::array::Array> = many.iter().map(|b| b.column(0).as_ref()).collect();
                arrow::compute::concat(&parts).map_err(malformed)?
            }
        };
        sub.columns.push(column);
        if sub.columns.len() == answer.fields().len() {
            let columns = std::mem::take(&mut sub.columns);
            let rows = RecordBatch::try_new(answer.clone(), columns).map_err(malformed)?;
            if rows.num_rows() > 0 {
                each(&rows);
            }
            starts.insert(stream_id, next_row_id);
        }
    }
    if subs.values().any(|s| !s.columns.is_empty() || !s.stream.is_empty()) {
        return Err(malformed("the answer ended inside a sub-split"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, StringArray, UInt64Array};
    use arrow::ipc::writer::StreamWriter;

    use super::*;
    use crate::catalog::Table;

    #[test]
    fn request_names_queried_columns_filter_and_leaves() -> Result<(), SinkError> {
        let table = Table::Files.schema();
        let ids = ["a", "b"];
        let select = Select {
            table: table.clone(),
            path: "/db/s/files".into(),
            columns: &["file_id", "metadata_embedding", ROW_ID],
            filter: Filter::In("source_uri", &ids),
            limit_rows: 10,
        };
        let (body, answer) = select.request()?;
        assert_eq!(
            answer.field(1).data_type(),
            table.field_with_name("metadata_embedding").map_err(malformed)?.data_type()
        );
        let relation = flatbuffers::root::<ir::Relation>(&body).map_err(malformed)?;
        let source = relation.impl__as_source().ok_or_else(|| malformed("no source"))?;
        // file_id 0, metadata_embedding 1 (its item 2), $row_id 3, source_uri 4.
        let leaves: Vec<u32> = source.projection().iter().flatten().map(|f| f.position()).collect();
        assert_eq!(leaves, [0, 2, 3]);
        let filter = source.filter().and_then(|f| f.impl__as_call()).ok_or_else(|| malformed("no call"))?;
        assert_eq!(filter.name(), "and");
        let or = filter.arguments().get(0).impl__as_call().ok_or_else(|| malformed("no or"))?;
        assert_eq!((or.name(), or.arguments().len()), ("or", 2));
        let equal = or.arguments().get(1).impl__as_call().ok_or_else(|| malformed("no equal"))?;
        let column = equal.arguments().get(0).impl__as_field_ref().and_then(|r| r.ref__as_field_index());
        assert_eq!(column.map(|c| c.position()), Some(4));
        let literal = equal.arguments().get(1).impl__as_literal().and_then(|l| l.impl__as_string_literal());
        assert_eq!(literal.and_then(|l| l.value()), Some("b"));
        Ok(())
    }

    fn chunk(out: &mut Vec<u8>, stream: u32, next: u64, batch: &RecordBatch) -> Result<(), SinkError> {
        let mut w = StreamWriter::try_new(Vec::new(), &batch.schema()).map_err(malformed)?;
        w.write(batch).map_err(malformed)?;
        let bytes = w.into_inner().map_err(malformed)?;
        let mut at = 0;
        while at < bytes.len() {
            let start = at;
            message(&bytes, &mut at)?;
            out.extend_from_slice(&stream.to_le_bytes());
            out.extend_from_slice(&next.to_le_bytes());
            out.extend_from_slice(&bytes[start..at]);
        }
        Ok(())
    }

    #[test]
    fn answer_is_assembled_per_sub_split_and_resumes() -> Result<(), SinkError> {
        let ids = RecordBatch::try_from_iter([("file_id", Arc::new(StringArray::from(vec!["x", "y"])) as ArrayRef)])
            .map_err(malformed)?;
        let rows = RecordBatch::try_from_iter([(ROW_ID, Arc::new(UInt64Array::from(vec![4, 8])) as ArrayRef)])
            .map_err(malformed)?;
        let answer = Arc::new(Schema::new(vec![
            Field::new("file_id", DataType::Utf8, false),
            Field::new(ROW_ID, DataType::UInt64, true),
        ]));
        let mut body = KEEP_ALIVE.to_le_bytes().to_vec();
        chunk(&mut body, 0, 9, &ids)?;
        chunk(&mut body, 1, INVALID_ROW_ID, &ids.slice(0, 1))?;
        chunk(&mut body, 0, 9, &rows)?;
        chunk(&mut body, 1, INVALID_ROW_ID, &rows.slice(0, 1))?;
        body.extend_from_slice(&COMPLETED.to_le_bytes());
        let mut starts: BTreeMap<u32, u64> = (0..2).map(|s| (s, 0)).collect();
        let mut seen = Vec::new();
        parse(&body, &answer, &mut starts, &mut |b: &RecordBatch| {
            seen.extend(b.column(0).as_string::<i32>().iter().flatten().map(str::to_owned))
        })?;
        assert_eq!(seen, ["x", "y", "x"]);
        assert_eq!(starts, BTreeMap::from([(0, 9), (1, INVALID_ROW_ID)]));
        assert!(parse(&body[..body.len() - 30], &answer, &mut starts, &mut |_: &RecordBatch| {}).is_err());
        Ok(())
    }
}
