// Command flightsql-server runs Apache Arrow's reference Flight SQL server
// (arrow-go's SQLite-backed example) over a SQLite database file, so that a
// test can stop and restart it without losing what was written.
//
// Optional flags turn on what a production server (VAST DataBase) has and the
// stock example lacks, so that every client path can be tested:
//
//	-auth-user/-auth-password  basic-auth handshake issuing a bearer token
//	-auth-token                a pre-issued bearer token that is also accepted
//	-tls-cert/-tls-key         TLS (PEM files)
//	-ingest                    Flight SQL bulk ingest (CommandStatementIngest)
//	-no-transactions           advertise no transaction support in SqlInfo
//	-transaction-idle-timeout  roll back a transaction no request used for this long
//
// The log says how many prepared statements are open whenever that changes.
package main

import (
	"database/sql"
	"flag"
	"log"
	"net"
	"os"
	"strconv"
	"syscall"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql/example"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	_ "modernc.org/sqlite"
)

func main() {
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.Int("port", 0, "port to listen on (0 picks a free one)")
	dbPath := flag.String("db", "flightsql.db", "SQLite database file")
	authUser := flag.String("auth-user", "", "require basic-auth handshake with this user name")
	authPassword := flag.String("auth-password", "", "password for -auth-user")
	authToken := flag.String("auth-token", "", "also accept this pre-issued bearer token")
	tlsCert := flag.String("tls-cert", "", "serve TLS with this PEM certificate (chain)")
	tlsKey := flag.String("tls-key", "", "PEM private key for -tls-cert")
	ingest := flag.Bool("ingest", false, "support Flight SQL bulk ingest")
	noTransactions := flag.Bool("no-transactions", false, "advertise no transaction support")
	idle := flag.Duration("transaction-idle-timeout", 0, "roll back a transaction unused for this long (0: never)")
	flag.Parse()

	// WAL and a busy timeout let the server's pooled connections share one file.
	db, err := sql.Open("sqlite", "file:"+*dbPath+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
	if err != nil {
		log.Fatal(err)
	}
	sqlite, err := example.NewSQLiteFlightSQLServer(db)
	if err != nil {
		log.Fatal(err)
	}
	if *noTransactions {
		must(sqlite.RegisterSqlInfo(flightsql.SqlInfoFlightSqlServerTransaction, int32(flightsql.SqlTransactionNone)))
		must(sqlite.RegisterSqlInfo(flightsql.SqlInfoTransactionsSupported, false))
	}
	var srv flightsql.Server = sqlite
	if *ingest {
		must(sqlite.RegisterSqlInfo(flightsql.SqlInfoFlightSqlServerBulkIngestion, true))
		must(sqlite.RegisterSqlInfo(flightsql.SqlInfoFlightSqlServerIngestTransactionsSupported, !*noTransactions))
		srv = &ingestServer{SQLiteFlightSQLServer: sqlite}
	}
	srv = newHandleServer(srv, *idle)

	var middleware []flight.ServerMiddleware
	if *authUser != "" || *authToken != "" {
		middleware = append(middleware, flight.CreateServerBasicAuthMiddleware(newTokenAuth(*authUser, *authPassword, *authToken)))
	}
	var opts []grpc.ServerOption
	if *tlsCert != "" {
		creds, err := credentials.NewServerTLSFromFile(*tlsCert, *tlsKey)
		if err != nil {
			log.Fatal(err)
		}
		opts = append(opts, grpc.Creds(creds))
	}

	server := flight.NewServerWithMiddleware(middleware, opts...)
	server.RegisterFlightService(flightsql.NewFlightServer(srv))
	if err := server.Init(net.JoinHostPort(*host, strconv.Itoa(*port))); err != nil {
		log.Fatal(err)
	}
	// Name the signals: with none, Go relays every signal, including the runtime's own
	// SIGURG preemption, and the server would stop at random.
	server.SetShutdownOnSignals(os.Interrupt, syscall.SIGTERM)
	// The test environment reads this line to learn the address.
	log.Printf("Starting Flight SQL server on %s", server.Addr())
	if err := server.Serve(); err != nil {
		log.Fatal(err)
	}
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
