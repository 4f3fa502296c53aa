// go-pgx: the first study's Go data point on the bakeoff contract. Go's net/http serves each
// request on its own goroutine, GOMAXPROCS threads run them (WORKERS; by default the CPUs the
// process is pinned to), and one pgxpool pool of DB_POOL_SIZE connections runs core's raw SQL.
//
// main reads the configuration, opens the pool, listens, prints `listening on http://ADDR`, and
// on SIGTERM or SIGINT stops accepting, lets the requests in flight finish and exits 0 (1 if one
// was still running at the 10 s deadline).
package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
)

// openAPIDocument is the contract's document, core's generated one (peers/common/openapi.json,
// copied beside the sources when the program is built), served byte for byte.
//
//go:embed openapi.json
var openAPIDocument []byte

// version is the workspace version: core writes it into the document's info.version.
var version = func() string {
	var document struct {
		Info struct {
			Version string `json:"version"`
		} `json:"info"`
	}
	if err := json.Unmarshal(openAPIDocument, &document); err != nil {
		panic(fmt.Sprintf("the embedded openapi.json is not JSON: %v", err))
	}
	return document.Info.Version
}()

type logLevel int

const (
	levelError logLevel = iota
	levelWarn
	levelInfo
	levelDebug
)

var currentLogLevel = levelWarn

// logLevelFrom reads RUST_LOG as a plain level (the Rust servers take a tracing filter; one with
// targets falls back to the default, warnings).
func logLevelFrom(text string) logLevel {
	switch strings.ToLower(strings.TrimSpace(text)) {
	case "error":
		return levelError
	case "info":
		return levelInfo
	case "debug", "trace":
		return levelDebug
	default:
		return levelWarn
	}
}

func logAt(level logLevel, format string, arguments ...interface{}) {
	if level <= currentLogLevel {
		log.Printf(format, arguments...)
	}
}

func main() {
	settings := startup()
	currentLogLevel = settings.LogLevel
	log.SetOutput(os.Stderr)
	runtime.GOMAXPROCS(settings.Workers)
	// Built before the first request, so that none pays for it.
	matrix()

	pool, err := openPool(settings)
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: DATABASE_URL: %v\n", err)
		os.Exit(2)
	}
	// Installed before the address is announced, so that an early signal is never lost.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	listener, err := net.Listen("tcp", settings.Bind)
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: cannot listen on %s: %v\n", settings.Bind, err)
		os.Exit(1)
	}
	server := &http.Server{Handler: &app{settings: settings, pool: pool}}
	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()
	fmt.Printf("listening on http://%s\n", listener.Addr())

	select {
	case caught := <-signals:
		logAt(levelInfo, "%v: finishing requests in flight", caught)
	case err := <-served:
		fmt.Fprintf(os.Stderr, "error: serving: %v\n", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownDeadline)
	defer cancel()
	if err := server.Shutdown(ctx); err != nil {
		logAt(levelWarn, "requests still in flight at the shutdown deadline; exiting anyway")
		os.Exit(1)
	}
	pool.Close()
}
