//! Query results on stdout: an aligned table, CSV, or JSON lines.

use std::io::{self, Write};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type, Schema, UInt64Type};
use arrow::error::ArrowError;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::Value;

/// How rows are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Columns aligned under a header; long values cut at 60 characters.
    Table,
    /// RFC 4180 CSV with a header line; values whole.
    Csv,
    /// One JSON object per row (numbers, booleans, strings, arrays for vectors).
    Json,
}

/// Widest table cell, in characters.
const MAX_CELL: usize = 60;

/// Why rows could not be printed.
#[derive(Debug, thiserror::Error)]
pub enum PrintError {
    /// A value has no text form.
    #[error("formatting a value: {0}")]
    Arrow(#[from] ArrowError),
    /// stdout failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Prints `batches` (of `schema`) to `out` as `format` says.
pub fn print(out: &mut impl Write, format: Format, schema: &Schema, batches: &[RecordBatch]) -> Result<(), PrintError> {
    match format {
        Format::Table => table(out, schema, batches),
        Format::Csv => csv(out, schema, batches),
        Format::Json => json(out, batches),
    }
}

/// `array` in a form Arrow can print: a timestamp in a named zone (DuckDB answers `UTC`)
/// is shown at offset `+00:00` — the same instants; naming zones would need the tz database.
fn printable(array: &dyn Array) -> Result<ArrayRef, ArrowError> {
    match array.data_type() {
        DataType::Timestamp(unit, Some(tz)) if tz.parse::<arrow::array::timezone::Tz>().is_err() => {
            arrow::compute::cast(array, &DataType::Timestamp(*unit, Some("+00:00".into())))
        }
        _ => Ok(arrow::array::make_array(array.to_data())),
    }
}

/// The text of every cell of `batch`, column by column.
fn texts(batch: &RecordBatch) -> Result<Vec<Vec<String>>, ArrowError> {
    let options = FormatOptions::default().with_null("");
    batch
        .columns()
        .iter()
        .map(|column| {
            let column = printable(column.as_ref())?;
            let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
            Ok((0..column.len()).map(|row| formatter.value(row).to_string()).collect())
        })
        .collect()
}

fn table(out: &mut impl Write, schema: &Schema, batches: &[RecordBatch]) -> Result<(), PrintError> {
    let cut = |text: String| -> String {
        let one_line = text.replace('\n', "\\n");
        match one_line.char_indices().nth(MAX_CELL - 1) {
            Some((at, _)) => format!("{}…", &one_line[..at]),
            None => one_line,
        }
    };
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let right: Vec<bool> = schema.fields().iter().map(|f| f.data_type().is_numeric()).collect();
    let mut rows: Vec<Vec<String>> = Vec::new();
    for batch in batches {
        let columns = texts(batch)?;
        for row in 0..batch.num_rows() {
            rows.push(columns.iter().map(|column| cut(column[row].clone())).collect());
        }
    }
    let mut widths: Vec<usize> = names.iter().map(|n| n.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &[String]| -> io::Result<()> {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = " ".repeat(widths[i] - cell.chars().count());
            if i > 0 {
                text.push_str("  ");
            }
            if right[i] {
                text.push_str(&pad);
                text.push_str(cell);
            } else {
                text.push_str(cell);
                if i + 1 < cells.len() {
                    text.push_str(&pad);
                }
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(&mut *out, &names)?;
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&mut *out, &rule)?;
    for row in &rows {
        line(&mut *out, row)?;
    }
    writeln!(out, "({} row{})", rows.len(), if rows.len() == 1 { "" } else { "s" })?;
    Ok(())
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_owned() }
}

fn csv(out: &mut impl Write, schema: &Schema, batches: &[RecordBatch]) -> Result<(), PrintError> {
    let header: Vec<String> = schema.fields().iter().map(|f| csv_field(f.name())).collect();
    writeln!(out, "{}", header.join(","))?;
    for batch in batches {
        let columns = texts(batch)?;
        for row in 0..batch.num_rows() {
            let fields: Vec<String> = columns.iter().map(|column| csv_field(&column[row])).collect();
            writeln!(out, "{}", fields.join(","))?;
        }
    }
    Ok(())
}

/// The JSON value of `array[row]`: numbers, booleans and text as themselves, lists as
/// arrays, anything else (times, decimals, binary) as its text.
fn cell(array: &dyn Array, row: usize) -> Result<Value, ArrowError> {
    if array.is_null(row) {
        return Ok(Value::Null);
    }
    let one = array.slice(row, 1);
    let value = match array.data_type() {
        DataType::Boolean => Value::Bool(one.as_boolean().value(0)),
        t if t.is_signed_integer() => {
            Value::from(arrow::compute::cast(&one, &DataType::Int64)?.as_primitive::<Int64Type>().value(0))
        }
        t if t.is_unsigned_integer() => {
            Value::from(arrow::compute::cast(&one, &DataType::UInt64)?.as_primitive::<UInt64Type>().value(0))
        }
        t if t.is_floating() => {
            let v = arrow::compute::cast(&one, &DataType::Float64)?.as_primitive::<Float64Type>().value(0);
            serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            Value::from(arrow::compute::cast(&one, &DataType::Utf8)?.as_string::<i32>().value(0))
        }
        DataType::List(_) => list(array.as_list::<i32>().value(row).as_ref())?,
        DataType::LargeList(_) => list(array.as_list::<i64>().value(row).as_ref())?,
        DataType::FixedSizeList(_, _) => list(array.as_fixed_size_list().value(row).as_ref())?,
        _ => {
            let array = printable(array)?;
            let formatter = ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())?;
            Value::from(formatter.value(row).to_string())
        }
    };
    Ok(value)
}

fn list(items: &dyn Array) -> Result<Value, ArrowError> {
    Ok(Value::Array((0..items.len()).map(|i| cell(items, i)).collect::<Result<_, _>>()?))
}

fn json(out: &mut impl Write, batches: &[RecordBatch]) -> Result<(), PrintError> {
    for batch in batches {
        let schema = batch.schema();
        for row in 0..batch.num_rows() {
            let mut object = serde_json::Map::with_capacity(batch.num_columns());
            for (field, column) in schema.fields().iter().zip(batch.columns()) {
                object.insert(field.name().clone(), cell(column.as_ref(), row)?);
            }
            serde_json::to_writer(&mut *out, &Value::Object(object)).map_err(io::Error::from)?;
            writeln!(out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, BooleanArray, Float32Array, Int32Array, StringArray};
    use arrow::datatypes::Field;

    use super::*;

    fn sample() -> (Schema, RecordBatch) {
        let schema = Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("n", DataType::Int32, true),
            Field::new("deep", DataType::Boolean, true),
            Field::new("score", DataType::Float32, true),
        ]);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![Some("a,\"b\""), None])),
            Arc::new(Int32Array::from(vec![Some(1001), Some(7)])),
            Arc::new(BooleanArray::from(vec![Some(true), None])),
            Arc::new(Float32Array::from(vec![Some(0.5), Some(f32::NAN)])),
        ];
        let batch = RecordBatch::try_new(Arc::new(schema.clone()), columns).unwrap_or_else(|e| panic!("{e}"));
        (schema, batch)
    }

    fn printed(format: Format) -> String {
        let (schema, batch) = sample();
        let mut out = Vec::new();
        print(&mut out, format, &schema, &[batch]).unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn csv_quotes_and_leaves_nulls_empty() {
        assert_eq!(printed(Format::Csv), "name,n,deep,score\n\"a,\"\"b\"\"\",1001,true,0.5\n,7,,NaN\n");
    }

    #[test]
    fn json_lines_keep_types() {
        let lines: Vec<Value> =
            printed(Format::Json).lines().map(|l| serde_json::from_str(l).unwrap_or(Value::Null)).collect();
        assert_eq!(lines[0], serde_json::json!({"name": "a,\"b\"", "n": 1001, "deep": true, "score": 0.5}));
        assert_eq!(lines[1], serde_json::json!({"name": null, "n": 7, "deep": null, "score": null}));
    }

    #[test]
    fn table_aligns_numbers_right() {
        let text = printed(Format::Table);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "name      n  deep  score");
        assert_eq!(lines[1], "-----  ----  ----  -----");
        assert_eq!(lines[2], "a,\"b\"  1001  true    0.5");
        assert_eq!(lines[3], "          7          NaN");
        assert_eq!(lines[4], "(2 rows)");
    }
}
