package main

import (
	"context"
	"encoding/hex"
	"log"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// handleServer keeps track of what clients leave open on the server: it logs the
// number of open prepared statements whenever it changes ("prepared statements open:
// N"), so that a test can see a statement that was never closed, and, with a non-zero
// idle timeout, rolls back a transaction that no request has used for that long, as
// production servers expire idle transactions and sessions. (The stock example keeps
// an abandoned transaction, and SQLite's write lock with it, until it is stopped.)
type handleServer struct {
	flightsql.Server
	idle time.Duration

	mu       sync.Mutex
	txns     map[string]*txnUse   // open transactions by id
	expired  map[string]time.Time // transactions rolled back for idleness, and when
	prepared map[string]string    // open prepared statements: handle → transaction id ("" for none)
}

// txnUse is when a transaction was last used and how many requests use it now.
type txnUse struct {
	last time.Time
	busy int
}

func newHandleServer(inner flightsql.Server, idle time.Duration) *handleServer {
	s := &handleServer{Server: inner, idle: idle, txns: map[string]*txnUse{}, expired: map[string]time.Time{}, prepared: map[string]string{}}
	if idle > 0 {
		go s.expire()
	}
	return s
}

// endTransaction is an EndTransaction request made by the server itself.
type endTransaction struct {
	id     []byte
	action flightsql.EndTransactionRequestType
}

func (e endTransaction) GetTransactionId() []byte                       { return e.id }
func (e endTransaction) GetAction() flightsql.EndTransactionRequestType { return e.action }

// expire rolls back, every tenth of the idle timeout, the transactions idle for longer.
func (s *handleServer) expire() {
	tick := s.idle / 10
	if tick < 10*time.Millisecond {
		tick = 10 * time.Millisecond
	}
	for range time.Tick(tick) {
		now := time.Now()
		var stale []string
		s.mu.Lock()
		for id, use := range s.txns {
			if use.busy == 0 && now.Sub(use.last) > s.idle {
				stale = append(stale, id)
				delete(s.txns, id)
				s.expired[id] = now
			}
		}
		for id, at := range s.expired {
			if now.Sub(at) > 100*s.idle {
				delete(s.expired, id)
			}
		}
		s.mu.Unlock()
		for _, id := range stale {
			err := s.Server.EndTransaction(context.Background(), endTransaction{[]byte(id), flightsql.EndTransactionRollback})
			log.Printf("transaction %s idle for more than %s: rolled back (%v)", hex.EncodeToString([]byte(id)), s.idle, err)
		}
	}
}

// use marks transaction id (none: "") as used by a request until the returned function
// is called; an expired transaction is refused with ABORTED.
func (s *handleServer) use(id string) (func(), error) {
	if id == "" {
		return func() {}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, gone := s.expired[id]; gone {
		return nil, status.Errorf(codes.Aborted, "transaction rolled back by the server after %s idle", s.idle)
	}
	use, ok := s.txns[id]
	if !ok {
		// Not one this wrapper saw begin: the example server answers for it.
		return func() {}, nil
	}
	use.busy++
	use.last = time.Now()
	return func() {
		s.mu.Lock()
		use.busy--
		use.last = time.Now()
		s.mu.Unlock()
	}, nil
}

// useStatement marks the transaction of a prepared statement as used.
func (s *handleServer) useStatement(handle []byte) (func(), error) {
	s.mu.Lock()
	id := s.prepared[string(handle)]
	s.mu.Unlock()
	return s.use(id)
}

func (s *handleServer) BeginTransaction(ctx context.Context, req flightsql.ActionBeginTransactionRequest) ([]byte, error) {
	id, err := s.Server.BeginTransaction(ctx, req)
	if err == nil {
		s.mu.Lock()
		s.txns[string(id)] = &txnUse{last: time.Now()}
		s.mu.Unlock()
	}
	return id, err
}

func (s *handleServer) EndTransaction(ctx context.Context, req flightsql.ActionEndTransactionRequest) error {
	id := string(req.GetTransactionId())
	s.mu.Lock()
	_, gone := s.expired[id]
	delete(s.txns, id)
	s.mu.Unlock()
	if gone {
		return status.Errorf(codes.Aborted, "transaction rolled back by the server after %s idle", s.idle)
	}
	return s.Server.EndTransaction(ctx, req)
}

func (s *handleServer) CreatePreparedStatement(ctx context.Context, req flightsql.ActionCreatePreparedStatementRequest) (flightsql.ActionCreatePreparedStatementResult, error) {
	done, err := s.use(string(req.GetTransactionId()))
	if err != nil {
		return flightsql.ActionCreatePreparedStatementResult{}, err
	}
	defer done()
	result, err := s.Server.CreatePreparedStatement(ctx, req)
	if err == nil {
		s.mu.Lock()
		s.prepared[string(result.Handle)] = string(req.GetTransactionId())
		n := len(s.prepared)
		s.mu.Unlock()
		log.Printf("prepared statements open: %d", n)
	}
	return result, err
}

func (s *handleServer) ClosePreparedStatement(ctx context.Context, req flightsql.ActionClosePreparedStatementRequest) error {
	s.mu.Lock()
	_, open := s.prepared[string(req.GetPreparedStatementHandle())]
	delete(s.prepared, string(req.GetPreparedStatementHandle()))
	n := len(s.prepared)
	s.mu.Unlock()
	if open {
		log.Printf("prepared statements open: %d", n)
	}
	return s.Server.ClosePreparedStatement(ctx, req)
}

func (s *handleServer) DoPutCommandStatementUpdate(ctx context.Context, cmd flightsql.StatementUpdate) (int64, error) {
	done, err := s.use(string(cmd.GetTransactionId()))
	if err != nil {
		return 0, err
	}
	defer done()
	return s.Server.DoPutCommandStatementUpdate(ctx, cmd)
}

func (s *handleServer) DoPutCommandStatementIngest(ctx context.Context, cmd flightsql.StatementIngest, rdr flight.MessageReader) (int64, error) {
	done, err := s.use(string(cmd.GetTransactionId()))
	if err != nil {
		return 0, err
	}
	defer done()
	return s.Server.DoPutCommandStatementIngest(ctx, cmd, rdr)
}

func (s *handleServer) GetFlightInfoStatement(ctx context.Context, cmd flightsql.StatementQuery, desc *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	done, err := s.use(string(cmd.GetTransactionId()))
	if err != nil {
		return nil, err
	}
	defer done()
	return s.Server.GetFlightInfoStatement(ctx, cmd, desc)
}

func (s *handleServer) DoPutPreparedStatementUpdate(ctx context.Context, cmd flightsql.PreparedStatementUpdate, rdr flight.MessageReader) (int64, error) {
	done, err := s.useStatement(cmd.GetPreparedStatementHandle())
	if err != nil {
		return 0, err
	}
	defer done()
	return s.Server.DoPutPreparedStatementUpdate(ctx, cmd, rdr)
}

func (s *handleServer) DoPutPreparedStatementQuery(ctx context.Context, cmd flightsql.PreparedStatementQuery, rdr flight.MessageReader, w flight.MetadataWriter) ([]byte, error) {
	done, err := s.useStatement(cmd.GetPreparedStatementHandle())
	if err != nil {
		return nil, err
	}
	defer done()
	return s.Server.DoPutPreparedStatementQuery(ctx, cmd, rdr, w)
}
