"""Configuration from the environment and the command line every server shares (`core::config`).

The same variables as the Rust servers, with the same rules and one-line errors: a missing or
malformed variable is one line on stderr naming it and exit code 2; `--help` lists the
variables; `--version` prints the version; any other argument is refused with exit code 2.
"""

from __future__ import annotations

import enum
import ipaddress
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from . import VERSION

#: The variables every server reads, in the order `--help` lists them.
ENV_VARS = (
    "DATABASE_URL",
    "BIND",
    "WORKERS",
    "DB_POOL_SIZE",
    "DB_WAIT_TIMEOUT_MS",
    "DB_RECYCLE",
    "RUST_LOG",
)

DEFAULT_BIND = "127.0.0.1:8000"
DEFAULT_DB_WAIT_TIMEOUT_MS = 2_000

#: How long a server keeps finishing in-flight requests after SIGTERM or SIGINT.
SHUTDOWN_DEADLINE_SECONDS = 10

#: `RUST_LOG` read as a plain level (the Rust servers take a tracing filter; a filter with
#: targets falls back to the default, warnings).
_LOG_LEVELS = {
    "error": "error",
    "warn": "warning",
    "info": "info",
    "debug": "debug",
    "trace": "debug",
}


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask). PyPy has no
    `os.sched_getaffinity`; the same mask is then read from /proc."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return _allowed_cpus_from_proc() or os.cpu_count() or 1


def _allowed_cpus_from_proc() -> int:
    """The count of `Cpus_allowed_list` in /proc/self/status (`0-1,3` is three); 0 if absent."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            lines = [line for line in status if line.startswith("Cpus_allowed_list:")]
    except OSError:
        return 0
    count = 0
    for part in lines[0].split(":", 1)[1].strip().split(",") if lines else []:
        first, _, last = part.partition("-")
        count += int(last or first) - int(first) + 1
    return count


class DbRecycle(enum.Enum):
    """`DB_RECYCLE` (`core::config::DbRecycle`): whether checking a pooled connection out runs a
    query. Under either policy a request whose first statement finds its connection closed under
    it is retried once on another connection, checked with a query first."""

    #: No query on checkout: only the connection's own state is looked at (the default).
    FAST = "fast"
    #: One query on every checkout of an idle connection; one that fails it is dropped and
    #: another one taken.
    VERIFIED = "verified"

    @classmethod
    def parse(cls, text: str) -> DbRecycle:
        """`fast` or `verified`, in any case; ValueError with core's message otherwise."""
        try:
            return cls(text.strip().lower())
        except ValueError:
            raise ValueError(f'"{text}" is neither fast nor verified') from None


@dataclass(frozen=True)
class Variant:
    """What a peer is, for `--help`, `/version` and `/test/resmon`."""

    #: The name `/version` answers.
    name: str
    #: One line: the architecture it shows.
    summary: str
    #: The defaults of WORKERS and DB_POOL_SIZE, in words and as functions.
    workers_default: str
    pool_default: str
    #: What DB_RECYCLE means for this peer's pool, in words.
    recycle_meaning: str
    default_workers: Callable[[], int]
    default_pool_size: Callable[[int], int]


class ConfigError(Exception):
    """A configuration variable that is missing or malformed."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


@dataclass(frozen=True)
class Settings:
    """The configuration of a peer, defaults applied."""

    database_url: str
    bind_host: str
    bind_port: int
    #: Worker processes.
    workers: int
    #: Database connections per worker process.
    db_pool_size: int
    #: How long a request may wait for a database connection before it gets 503, in seconds.
    db_wait_timeout: float
    #: DB_RECYCLE: whether a checkout runs a query.
    db_recycle: DbRecycle
    #: gunicorn's log level, from RUST_LOG.
    log_level: str

    @property
    def bind(self) -> str:
        """`host:port`, with brackets around an IPv6 host, as gunicorn takes it."""
        host = f"[{self.bind_host}]" if ":" in self.bind_host else self.bind_host
        return f"{host}:{self.bind_port}"


def _positive(text: str) -> int | None:
    text = text.strip()
    if not re.fullmatch(r"\+?[0-9]+", text):
        return None
    value = int(text)
    return value if value >= 1 else None


def _socket_address(text: str) -> tuple[str, int] | None:
    """An IP address and port, as Rust's SocketAddr parses it (no host names)."""
    match = re.fullmatch(r"\[([^\]]+)\]:([0-9]{1,5})|([^:\[\]]+):([0-9]{1,5})", text)
    if not match:
        return None
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if (address.version == 6) != bool(match.group(1)) or port > 65_535:
        return None
    return str(address), port


def settings_from_env(variant: Variant, environ: Mapping[str, str] = os.environ) -> Settings:
    """Reads the configuration; raises ConfigError naming the first bad variable."""

    def present(name: str) -> str | None:
        value = environ.get(name)
        return value if value is not None and value.strip() else None

    database_url = present("DATABASE_URL")
    if database_url is None:
        raise ConfigError("DATABASE_URL", "is required (postgres://user@host:port/db)")
    database_url = database_url.strip()
    scheme = urlsplit(database_url).scheme if "://" in database_url else ""
    if not scheme:
        raise ConfigError("DATABASE_URL", "not a URL (no scheme://)")
    if scheme not in ("postgres", "postgresql"):
        raise ConfigError(
            "DATABASE_URL", f"scheme must be postgres:// or postgresql://, not {scheme}://"
        )

    bind_text = present("BIND") or DEFAULT_BIND
    bind = _socket_address(bind_text.strip())
    if bind is None:
        raise ConfigError(
            "BIND", f"{bind_text!r} is not an address and port such as 127.0.0.1:8000"
        )

    workers = variant.default_workers()
    if (text := present("WORKERS")) is not None:
        if (workers := _positive(text)) is None:
            raise ConfigError("WORKERS", f"{text!r} is not a whole number of at least 1")
    db_pool_size = variant.default_pool_size(workers)
    if (text := present("DB_POOL_SIZE")) is not None:
        if (db_pool_size := _positive(text)) is None:
            raise ConfigError("DB_POOL_SIZE", f"{text!r} is not a whole number of at least 1")
    wait_millis = DEFAULT_DB_WAIT_TIMEOUT_MS
    if (text := present("DB_WAIT_TIMEOUT_MS")) is not None:
        if (wait_millis := _positive(text)) is None:
            raise ConfigError("DB_WAIT_TIMEOUT_MS", f"{text!r} is not a number of milliseconds")

    db_recycle = DbRecycle.FAST
    if (text := present("DB_RECYCLE")) is not None:
        try:
            db_recycle = DbRecycle.parse(text)
        except ValueError as problem:
            raise ConfigError("DB_RECYCLE", str(problem)) from None

    log_level = _LOG_LEVELS.get((environ.get("RUST_LOG") or "warn").strip().lower(), "warning")
    return Settings(
        database_url=database_url,
        bind_host=bind[0],
        bind_port=bind[1],
        workers=workers,
        db_pool_size=db_pool_size,
        db_wait_timeout=wait_millis / 1000,
        db_recycle=db_recycle,
        log_level=log_level,
    )


def help_text(variant: Variant) -> str:
    return (
        f"{variant.name} {VERSION}: {variant.summary}\n\n"
        f"Usage: serve.py   (configured by environment variables only)\n\n"
        "Environment:\n"
        "  DATABASE_URL        required; postgres://user[:password]@host[:port]/dbname\n"
        f"  BIND                address to listen on (default {DEFAULT_BIND}; "
        "port 0 picks a free port)\n"
        f"  WORKERS             worker processes (default: {variant.workers_default})\n"
        "  DB_POOL_SIZE        database connections per worker process "
        f"(default: {variant.pool_default})\n"
        "  DB_WAIT_TIMEOUT_MS  how long a request may wait for a connection before 503 "
        f"(default {DEFAULT_DB_WAIT_TIMEOUT_MS})\n"
        "  DB_RECYCLE          fast (default) or verified: whether checking a connection out "
        f"runs a query;\n                      here: {variant.recycle_meaning}\n"
        "  RUST_LOG            log level for stderr: error, warn, info or debug (default warn)\n\n"
        "On start it prints one line, `listening on http://ADDR`, on stdout.\n"
        "SIGTERM or SIGINT: stop accepting, finish in-flight requests, exit within "
        f"{SHUTDOWN_DEADLINE_SECONDS} s.\n"
    )


def startup(variant: Variant, arguments: list[str] | None = None) -> Settings:
    """The start of every peer's serve.py: answers `--help` and `--version`, refuses other
    arguments, and reads the configuration; on an error, one line on stderr and exit code 2."""
    arguments = sys.argv[1:] if arguments is None else arguments
    if arguments:
        if arguments[0] in ("--help", "-h"):
            sys.stdout.write(help_text(variant))
            sys.exit(0)
        if arguments[0] in ("--version", "-V"):
            print(f"{variant.name} {VERSION}")
            sys.exit(0)
        print(
            f"error: unexpected argument {arguments[0]!r}; configuration is by environment "
            "variables (see --help)",
            file=sys.stderr,
        )
        sys.exit(2)
    try:
        return settings_from_env(variant)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
