package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql/example"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ingestServer adds Flight SQL bulk ingest to the reference SQLite server. It goes
// through the example server's own public methods (statement update, prepared
// statement with a parameter batch), so an ingest joins the client's open
// transaction exactly as those do. SQLite has no list, boolean or timestamp types:
// lists are stored as JSON text, booleans as 0/1 and timestamps as their integer value;
// binary values reach SQLite as BLOBs through unhex(?).
type ingestServer struct {
	*example.SQLiteFlightSQLServer
}

type statement struct {
	query string
	txn   []byte
}

func (s statement) GetQuery() string         { return s.query }
func (s statement) GetTransactionId() []byte { return s.txn }

type handle []byte

func (h handle) GetPreparedStatementHandle() []byte { return h }

func (s *ingestServer) DoPutCommandStatementIngest(ctx context.Context, cmd flightsql.StatementIngest, rdr flight.MessageReader) (int64, error) {
	if cmd.GetCatalog() != "" || cmd.GetSchema() != "" || cmd.GetTemporary() {
		return 0, status.Error(codes.InvalidArgument, "this server has no catalogs, schemas or temporary tables")
	}
	opts := cmd.GetTableDefinitionOptions()
	switch opts.GetIfExists() {
	case flightsql.TableDefinitionOptionsTableExistsOptionUnspecified, flightsql.TableDefinitionOptionsTableExistsOptionAppend:
	default:
		return 0, status.Errorf(codes.Unimplemented, "if_exists %s is not supported", opts.GetIfExists())
	}
	table := quoteIdent(cmd.GetTable())
	schema := rdr.Schema()
	txn := cmd.GetTransactionId()

	if opts.GetIfNotExist() == flightsql.TableDefinitionOptionsTableNotExistOptionCreate {
		cols := make([]string, len(schema.Fields()))
		for i, f := range schema.Fields() {
			typ, err := sqliteType(f.Type)
			if err != nil {
				return 0, err
			}
			cols[i] = quoteIdent(f.Name) + " " + typ
		}
		ddl := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (%s)", table, strings.Join(cols, ", "))
		if _, err := s.DoPutCommandStatementUpdate(ctx, statement{ddl, txn}); err != nil {
			return 0, err
		}
	}

	rows, err := bindableBatches(rdr)
	if err != nil {
		return 0, err
	}
	defer rows.Release()
	if rows.rows == 0 {
		return 0, nil
	}
	names := make([]string, len(schema.Fields()))
	marks := make([]string, len(schema.Fields()))
	for i, f := range schema.Fields() {
		names[i] = quoteIdent(f.Name)
		marks[i] = "?"
		if f.Type.ID() == arrow.BINARY {
			marks[i] = "unhex(?)"
		}
	}
	insert := fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", table, strings.Join(names, ", "), strings.Join(marks, ", "))
	prepared, err := s.CreatePreparedStatement(ctx, statement{insert, txn})
	if err != nil {
		return 0, err
	}
	defer s.ClosePreparedStatement(ctx, handle(prepared.Handle))
	return s.DoPutPreparedStatementUpdate(ctx, handle(prepared.Handle), rows)
}

func quoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

func sqliteType(t arrow.DataType) (string, error) {
	switch t.ID() {
	case arrow.STRING, arrow.LARGE_STRING, arrow.LIST, arrow.LARGE_LIST, arrow.FIXED_SIZE_LIST:
		return "TEXT", nil
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.BOOL, arrow.TIMESTAMP:
		return "INTEGER", nil
	case arrow.FLOAT32, arrow.FLOAT64:
		return "REAL", nil
	case arrow.BINARY, arrow.LARGE_BINARY:
		return "BLOB", nil
	}
	return "", status.Errorf(codes.Unimplemented, "bulk ingest of %s columns is not supported", t)
}

// batchList is the ingested stream with every column converted to a type the
// example server can bind; it implements the parts of flight.MessageReader that the
// example's prepared-statement update reads.
type batchList struct {
	schema  *arrow.Schema
	batches []arrow.RecordBatch
	next    int
	rows    int64
}

func bindableBatches(rdr flight.MessageReader) (*batchList, error) {
	out := &batchList{}
	for rdr.Next() {
		batch := bindable(rdr.RecordBatch())
		out.schema = batch.Schema()
		out.rows += batch.NumRows()
		out.batches = append(out.batches, batch)
	}
	if err := rdr.Err(); err != nil {
		out.Release()
		return nil, err
	}
	return out, nil
}

func bindable(batch arrow.RecordBatch) arrow.RecordBatch {
	mem := memory.DefaultAllocator
	fields := make([]arrow.Field, batch.NumCols())
	cols := make([]arrow.Array, batch.NumCols())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for i, col := range batch.Columns() {
		fields[i] = batch.Schema().Field(i)
		switch c := col.(type) {
		case *array.Boolean:
			b := array.NewInt8Builder(mem)
			for r := 0; r < c.Len(); r++ {
				switch {
				case c.IsNull(r):
					b.AppendNull()
				case c.Value(r):
					b.Append(1)
				default:
					b.Append(0)
				}
			}
			cols[i], fields[i].Type = b.NewArray(), arrow.PrimitiveTypes.Int8
			b.Release()
		case *array.Timestamp:
			b := array.NewInt64Builder(mem)
			for r := 0; r < c.Len(); r++ {
				if c.IsNull(r) {
					b.AppendNull()
				} else {
					b.Append(int64(c.Value(r)))
				}
			}
			cols[i], fields[i].Type = b.NewArray(), arrow.PrimitiveTypes.Int64
			b.Release()
		case *array.Binary:
			// The example binds binary parameters as NULL (it releases each parameter
			// scalar before reading it): send hex text, stored through unhex(?).
			b := array.NewStringBuilder(mem)
			for r := 0; r < c.Len(); r++ {
				if c.IsNull(r) {
					b.AppendNull()
				} else {
					b.Append(hex.EncodeToString(c.Value(r)))
				}
			}
			cols[i], fields[i].Type = b.NewArray(), arrow.BinaryTypes.String
			b.Release()
		case *array.List, *array.LargeList, *array.FixedSizeList:
			b := array.NewStringBuilder(mem)
			for r := 0; r < col.Len(); r++ {
				if col.IsNull(r) {
					b.AppendNull()
				} else {
					b.Append(col.ValueStr(r))
				}
			}
			cols[i], fields[i].Type = b.NewArray(), arrow.BinaryTypes.String
			b.Release()
		default:
			col.Retain()
			cols[i] = col
		}
	}
	schema := arrow.NewSchema(fields, nil)
	return array.NewRecordBatch(schema, cols, batch.NumRows())
}

func (b *batchList) Retain() {}
func (b *batchList) Release() {
	for _, r := range b.batches {
		r.Release()
	}
	b.batches = nil
}
func (b *batchList) Schema() *arrow.Schema { return b.schema }
func (b *batchList) Next() bool {
	if b.next >= len(b.batches) {
		return false
	}
	b.next++
	return true
}
func (b *batchList) RecordBatch() arrow.RecordBatch { return b.batches[b.next-1] }
func (b *batchList) Record() arrow.RecordBatch      { return b.RecordBatch() }
func (b *batchList) Err() error                     { return nil }
func (b *batchList) Read() (arrow.RecordBatch, error) {
	if !b.Next() {
		return nil, io.EOF
	}
	return b.RecordBatch(), nil
}
func (b *batchList) Chunk() flight.StreamChunk                        { return flight.StreamChunk{Data: b.RecordBatch()} }
func (b *batchList) LatestFlightDescriptor() *flight.FlightDescriptor { return nil }
func (b *batchList) LatestAppMetadata() []byte                        { return nil }
