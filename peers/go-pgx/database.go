package main

// The database side: one pgxpool pool for the process, a connection checked out per request for
// all of its statements, core's SQL (sql.go).
//
// DB_RECYCLE is the pool's own hook: under `verified`, pgxpool's BeforeAcquire pings every
// connection it hands out (pgx's Ping, an empty query; a connection that fails it is destroyed
// and another one taken); under `fast` nothing runs, and pgxpool hands out any connection it has
// not seen close. Either way a request whose first statement finds its connection closed under it
// (a PostgreSQL restart, pg_terminate_backend) drops it and runs that statement once more on
// another connection, pinged first: nothing has been answered yet, and the contract's requests
// are reads.

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgconn"
	"github.com/jackc/pgx/v4"
	"github.com/jackc/pgx/v4/pgxpool"
)

// openPool makes the pool without connecting (a server started while PostgreSQL is down
// listens, answers 503 and serves once it is up), then opens its connections ahead of the first
// requests, best effort, so that none pays for a connect.
func openPool(settings Settings) (*pgxpool.Pool, error) {
	config, err := pgxpool.ParseConfig(settings.DatabaseURL)
	if err != nil {
		return nil, err
	}
	config.MaxConns = int32(settings.DbPoolSize)
	config.LazyConnect = true
	if settings.DbRecycle == RecycleVerified {
		config.BeforeAcquire = func(ctx context.Context, conn *pgx.Conn) bool {
			return conn.Ping(ctx) == nil
		}
	}
	pool, err := pgxpool.ConnectConfig(context.Background(), config)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), settings.DbWaitTimeout)
	defer cancel()
	var opened sync.WaitGroup
	connections := make(chan *pgxpool.Conn, settings.DbPoolSize)
	for count := 0; count < settings.DbPoolSize; count++ {
		opened.Add(1)
		go func() {
			defer opened.Done()
			if conn, err := pool.Acquire(ctx); err == nil {
				connections <- conn
			} else {
				logAt(levelInfo, "connection not opened at start: %v", err)
			}
		}()
	}
	opened.Wait()
	close(connections)
	for conn := range connections {
		conn.Release()
	}
	return pool, nil
}

// unavailable marks an error that means the database (or the connection to it) is gone: the
// contract's 503, not a bug.
type unavailable struct{ cause error }

func (err unavailable) Error() string { return "database unavailable: " + err.cause.Error() }
func (err unavailable) Unwrap() error { return err.cause }

// sqlState is the error's SQLSTATE, or "" when PostgreSQL did not send one.
func sqlState(err error) string {
	var pgError *pgconn.PgError
	if errors.As(err, &pgError) {
		return pgError.Code
	}
	return ""
}

// isConnectionLost is core's rule: the statement failed because its connection was closed under
// it (the backend terminated, SQLSTATE class 08, or the socket gone), so another one may work.
func isConnectionLost(conn *pgx.Conn, err error) bool {
	switch state := sqlState(err); {
	case state == "57P01" || state == "57P02" || strings.HasPrefix(state, "08"):
		return true
	case state != "":
		return false
	}
	return conn.IsClosed()
}

// isUnavailable is core's rule for a 503: SQLSTATE classes 08, 57P and 53, a failed socket, a
// timeout, a connection that closed.
func isUnavailable(conn *pgx.Conn, err error) bool {
	if state := sqlState(err); state != "" {
		return strings.HasPrefix(state, "08") || strings.HasPrefix(state, "57P") ||
			strings.HasPrefix(state, "53")
	}
	var netError net.Error
	return errors.As(err, &netError) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.EOF) || errors.Is(err, context.DeadlineExceeded) ||
		(conn != nil && conn.IsClosed())
}

// requestDB is a request's pooled connection. Checking out, the first time and for the retry,
// is bounded by DB_WAIT_TIMEOUT_MS as a whole. Statements run under no deadline of the request:
// a client that goes away does not cut a statement (pgx would close the connection).
type requestDB struct {
	pool           *pgxpool.Pool
	settings       *Settings
	deadline       time.Time
	conn           *pgxpool.Conn
	firstStatement bool
}

func newRequestDB(pool *pgxpool.Pool, settings *Settings) *requestDB {
	return &requestDB{
		pool:           pool,
		settings:       settings,
		deadline:       time.Now().Add(settings.DbWaitTimeout),
		firstStatement: true,
	}
}

// checkout takes a connection within the deadline. Under `verified` BeforeAcquire has pinged
// it; with pingHere (a retry under `fast`) it is pinged here, and one that fails is destroyed and
// another taken, at most once per connection of the pool.
func (db *requestDB) checkout(pingHere bool) error {
	ctx, cancel := context.WithDeadline(context.Background(), db.deadline)
	defer cancel()
	for attempt := 0; attempt <= db.settings.DbPoolSize; attempt++ {
		conn, err := db.pool.Acquire(ctx)
		if err != nil {
			return unavailable{err}
		}
		if !pingHere {
			db.conn = conn
			return nil
		}
		if err := conn.Conn().Ping(ctx); err != nil {
			lost := isConnectionLost(conn.Conn(), err)
			db.drop(conn)
			if lost {
				continue
			}
			return unavailable{err}
		}
		db.conn = conn
		return nil
	}
	return unavailable{errors.New("every connection tried was closed")}
}

// drop closes a connection found closed, so that the pool opens a new one in its place.
func (db *requestDB) drop(conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Conn().Close(ctx)
	conn.Release()
}

func (db *requestDB) release() {
	if db.conn != nil {
		db.conn.Release()
		db.conn = nil
	}
}

// run runs one statement on the request's connection; the first statement that finds the
// connection closed under it runs once more on another, pinged first. Later statements fail as
// they fail.
func (db *requestDB) run(statement func(conn *pgx.Conn) error) error {
	err := statement(db.conn.Conn())
	first := db.firstStatement
	db.firstStatement = false
	if err == nil || !first || !isConnectionLost(db.conn.Conn(), err) {
		return db.classify(err)
	}
	logAt(levelInfo, "database connection closed under a request; retrying on another")
	lost := db.conn
	db.conn = nil
	db.drop(lost)
	if err := db.checkout(true); err != nil {
		return err
	}
	return db.classify(statement(db.conn.Conn()))
}

// classify wraps an error that means the database is unavailable.
func (db *requestDB) classify(err error) error {
	if err != nil && isUnavailable(db.conn.Conn(), err) {
		return unavailable{err}
	}
	return err
}

// queryRows runs a statement and scans every row with scan.
func queryRows[T any](db *requestDB, scan func(pgx.Rows) (T, error), sql string, args ...interface{}) ([]T, error) {
	var results []T
	err := db.run(func(conn *pgx.Conn) error {
		results = results[:0]
		rows, err := conn.Query(context.Background(), sql, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			row, err := scan(rows)
			if err != nil {
				return err
			}
			results = append(results, row)
		}
		return rows.Err()
	})
	return results, err
}

// queryCount runs a statement whose one row is one count.
func queryCount(db *requestDB, sql string, args ...interface{}) (int64, error) {
	var count int64
	err := db.run(func(conn *pgx.Conn) error {
		return conn.QueryRow(context.Background(), sql, args...).Scan(&count)
	})
	return count, err
}
