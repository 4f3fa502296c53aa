package main

// Configuration from the environment and the command line, as every bakeoff server reads them
// (core::config): the same variables, the same rules and one-line errors. A missing or malformed
// variable is one line on stderr naming it and exit code 2; --help lists the variables;
// --version prints the version; any other argument is refused with exit code 2.

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

const (
	variantName = "go-pgx"
	defaultBind = "127.0.0.1:8000"
	// How long a request may wait for a database connection before it gets 503, by default.
	defaultDbWaitTimeoutMillis = 2000
	// How long in-flight requests may run on after SIGTERM or SIGINT.
	shutdownDeadline = 10 * time.Second
)

// DbRecycle is DB_RECYCLE: whether checking a pooled connection out runs a query.
type DbRecycle int

const (
	// RecycleFast runs no query on checkout (the default).
	RecycleFast DbRecycle = iota
	// RecycleVerified pings every connection it checks out; one that fails is dropped.
	RecycleVerified
)

func (recycle DbRecycle) String() string {
	if recycle == RecycleVerified {
		return "verified"
	}
	return "fast"
}

// Settings is the peer's configuration, defaults applied.
type Settings struct {
	DatabaseURL string
	Bind        string
	// Workers is GOMAXPROCS: the OS threads that run goroutines at once.
	Workers       int
	DbPoolSize    int
	DbWaitTimeout time.Duration
	DbRecycle     DbRecycle
	LogLevel      logLevel
}

type configError struct {
	variable string
	problem  string
}

func (err configError) Error() string { return err.variable + ": " + err.problem }

// present is the variable's value, or "" when it is unset or blank.
func present(name string) string {
	value := os.Getenv(name)
	if strings.TrimSpace(value) == "" {
		return ""
	}
	return value
}

// parsePositive reads a whole number of at least 1 as Rust's usize parser does (after trimming:
// ASCII digits, an optional leading +).
func parsePositive(text string) (int, bool) {
	text = strings.TrimPrefix(strings.TrimSpace(text), "+")
	if text == "" || strings.IndexFunc(text, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return 0, false
	}
	value, err := strconv.Atoi(text)
	return value, err == nil && value >= 1
}

// parseSocketAddress accepts what Rust's SocketAddr parses: an IP address (IPv6 in brackets) and
// a port, no host names.
func parseSocketAddress(text string) (string, bool) {
	host, port, err := net.SplitHostPort(text)
	if err != nil {
		return "", false
	}
	ip := net.ParseIP(host)
	bracketed := strings.HasPrefix(text, "[")
	if ip == nil || strings.Contains(host, "%") || (ip.To4() == nil) != bracketed {
		return "", false
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", false
	}
	return text, true
}

// settingsFromEnv reads the configuration; the error names the first bad variable.
func settingsFromEnv() (Settings, error) {
	settings := Settings{
		Bind:          defaultBind,
		DbWaitTimeout: defaultDbWaitTimeoutMillis * time.Millisecond,
		LogLevel:      logLevelFrom(os.Getenv("RUST_LOG")),
	}
	databaseURL := strings.TrimSpace(present("DATABASE_URL"))
	if databaseURL == "" {
		return settings, configError{"DATABASE_URL", "is required (postgres://user@host:port/db)"}
	}
	parsed, err := url.Parse(databaseURL)
	if err != nil || parsed.Scheme == "" || !strings.Contains(databaseURL, "://") {
		return settings, configError{"DATABASE_URL", "not a URL (no scheme://)"}
	}
	if parsed.Scheme != "postgres" && parsed.Scheme != "postgresql" {
		return settings, configError{"DATABASE_URL",
			fmt.Sprintf("scheme must be postgres:// or postgresql://, not %s://", parsed.Scheme)}
	}
	settings.DatabaseURL = databaseURL

	if text := present("BIND"); text != "" {
		bind, ok := parseSocketAddress(strings.TrimSpace(text))
		if !ok {
			return settings, configError{"BIND",
				fmt.Sprintf("%q is not an address and port such as 127.0.0.1:8000", text)}
		}
		settings.Bind = bind
	}

	// GOMAXPROCS's own default: the CPUs of the process's affinity mask, which is what taskset
	// pins (Go 1.19 reads sched_getaffinity at start; it does not read a cgroup CPU quota).
	settings.Workers = runtime.GOMAXPROCS(0)
	if text := present("WORKERS"); text != "" {
		workers, ok := parsePositive(text)
		if !ok {
			return settings, configError{"WORKERS", fmt.Sprintf("%q is not a whole number of at least 1", text)}
		}
		settings.Workers = workers
	}
	// pgxpool's own default: the larger of 4 and the CPUs.
	settings.DbPoolSize = defaultPoolSize()
	if text := present("DB_POOL_SIZE"); text != "" {
		size, ok := parsePositive(text)
		if !ok {
			return settings, configError{"DB_POOL_SIZE", fmt.Sprintf("%q is not a whole number of at least 1", text)}
		}
		settings.DbPoolSize = size
	}
	if text := present("DB_WAIT_TIMEOUT_MS"); text != "" {
		millis, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(text), "+"), 10, 64)
		if err != nil || millis < 1 {
			return settings, configError{"DB_WAIT_TIMEOUT_MS", fmt.Sprintf("%q is not a number of milliseconds", text)}
		}
		settings.DbWaitTimeout = time.Duration(millis) * time.Millisecond
	}
	if text := present("DB_RECYCLE"); text != "" {
		switch strings.ToLower(strings.TrimSpace(text)) {
		case "fast":
			settings.DbRecycle = RecycleFast
		case "verified":
			settings.DbRecycle = RecycleVerified
		default:
			return settings, configError{"DB_RECYCLE", fmt.Sprintf("%q is neither fast nor verified", text)}
		}
	}
	return settings, nil
}

func defaultPoolSize() int {
	if cpus := runtime.NumCPU(); cpus > 4 {
		return cpus
	}
	return 4
}

func helpText() string {
	return fmt.Sprintf(`%[1]s %[2]s: Go's net/http, a goroutine per request, raw SQL through one pgxpool pool

Usage: %[1]s   (configured by environment variables only)

Environment:
  DATABASE_URL        required; postgres://user[:password]@host[:port]/dbname
  BIND                address to listen on (default %[3]s; port 0 picks a free port)
  WORKERS             GOMAXPROCS, the threads that run goroutines at once (default: the CPUs
                      the process may run on, Go's own default)
  DB_POOL_SIZE        database connections (default: pgxpool's, the larger of 4 and the CPUs)
  DB_WAIT_TIMEOUT_MS  how long a request may wait for a connection before 503 (default %[4]d)
  DB_RECYCLE          fast (default) or verified: whether checking a connection out runs a query;
                      here: verified is pgxpool's BeforeAcquire hook, a ping (an empty query)
                      on every checkout
  RUST_LOG            log level for stderr: error, warn, info or debug (default warn)

On start it prints one line, `+"`listening on http://ADDR`"+`, on stdout.
SIGTERM or SIGINT: stop accepting, finish in-flight requests, exit within %[5]d s.
`, variantName, version, defaultBind, defaultDbWaitTimeoutMillis, int(shutdownDeadline.Seconds()))
}

// startup answers --help and --version, refuses other arguments and reads the configuration;
// on an error, one line on stderr and exit code 2.
func startup() Settings {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "--help", "-h":
			fmt.Print(helpText())
			os.Exit(0)
		case "--version", "-V":
			fmt.Printf("%s %s\n", variantName, version)
			os.Exit(0)
		default:
			fmt.Fprintf(os.Stderr, "error: unexpected argument %q; configuration is by environment variables (see --help)\n", os.Args[1])
			os.Exit(2)
		}
	}
	settings, err := settingsFromEnv()
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(2)
	}
	return settings
}
