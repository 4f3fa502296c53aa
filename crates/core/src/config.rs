//! Server configuration from the environment (12-factor), and the command line every server
//! shares: `--help` lists the variables, `--version` prints the version, nothing else is accepted.
//!
//! Every variant reads the same variables through [`Config::from_env`]; only the defaults that are
//! the point of a variant (its worker and pool sizes) differ, and each says so in [`VariantInfo`].

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

/// The variables every server reads, in the order `--help` lists them. The Docker setup is
/// checked against this list.
pub const ENV_VARS: [&str; 9] = [
    "DATABASE_URL",
    "BIND",
    "PROCESSES",
    "WORKERS",
    "DB_POOL_SIZE",
    "DB_WAIT_TIMEOUT_MS",
    "DB_RECYCLE",
    "DB_STATEMENTS",
    "RUST_LOG",
];

/// A server's exit code when one of its `PROCESSES` copies died while serving (it is not
/// restarted; see [`crate::process_group`]).
pub const EXIT_PROCESS_DIED: i32 = 3;

pub const DEFAULT_BIND: &str = "127.0.0.1:8000";
pub const DEFAULT_DB_WAIT_TIMEOUT_MS: u64 = 2_000;

/// How long a server keeps finishing in-flight requests after SIGTERM or SIGINT before it exits
/// anyway.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// What a server variant is, for `--help`, `/version` and `/test/resmon`.
#[derive(Debug, Clone, Copy)]
pub struct VariantInfo {
    /// The package and binary name, answered by `/version`.
    pub name: &'static str,
    /// One line: the architecture it shows.
    pub summary: &'static str,
    /// The default of `WORKERS`, in words.
    pub workers_default: &'static str,
    /// The default of `DB_POOL_SIZE`, in words.
    pub pool_default: &'static str,
    /// What `DB_RECYCLE` means for this variant's connections, in words.
    pub recycle_meaning: &'static str,
    /// `DB_STATEMENTS=unprepared`: what it does here (`Ok`), or why this variant cannot run
    /// its statements unprepared (`Err`), in words.
    pub unprepared_statements: Result<&'static str, &'static str>,
}

/// `DB_STATEMENTS`: whether the driver prepares named statements (each variant's own practice,
/// the default) or sends every statement unprepared, its parse, bind and execute in one round
/// trip. A pooler in transaction mode that predates protocol-level prepared statements
/// (PgBouncer before 1.21) hands a client another server connection after each transaction,
/// where a statement prepared on the last one does not exist: only unprepared statements work
/// behind it. Only a variant whose driver has a documented setting for it accepts `unprepared`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DbStatements {
    #[default]
    Prepared,
    Unprepared,
}

impl DbStatements {
    pub fn as_str(self) -> &'static str {
        match self {
            DbStatements::Prepared => "prepared",
            DbStatements::Unprepared => "unprepared",
        }
    }

    /// `prepared` or `unprepared`, in any case.
    pub fn parse(text: &str) -> Result<DbStatements, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "prepared" => Ok(DbStatements::Prepared),
            "unprepared" => Ok(DbStatements::Unprepared),
            _ => Err(format!("{text:?} is neither prepared nor unprepared")),
        }
    }
}

/// `DB_RECYCLE`: whether a pooled connection is checked with a query each time it is checked
/// out. One stated policy for every variant, so that a comparison never mixes a variant that
/// pays a round trip per checkout with one that does not.
///
/// Either way a connection whose socket is known to be closed is never handed out, and a
/// request whose first statement finds its connection closed under it is retried once on another
/// connection (the contract's requests are reads), so a PostgreSQL restart fails no request.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum DbRecycle {
    /// No query on checkout: only the connection's own state is looked at.
    #[default]
    Fast,
    /// One query on every checkout of an idle connection (an empty query or `SELECT 1`); a
    /// connection that fails it is dropped and another one taken.
    Verified,
}

impl DbRecycle {
    /// Every policy, in the order `--help` lists them.
    pub const ALL: [DbRecycle; 2] = [DbRecycle::Fast, DbRecycle::Verified];

    /// The value as written in `DB_RECYCLE` and reported by `/test/resmon`.
    pub fn as_str(self) -> &'static str {
        match self {
            DbRecycle::Fast => "fast",
            DbRecycle::Verified => "verified",
        }
    }

    /// `fast` or `verified`, in any case.
    pub fn parse(text: &str) -> Result<DbRecycle, String> {
        let wanted = text.trim().to_ascii_lowercase();
        DbRecycle::ALL
            .into_iter()
            .find(|policy| policy.as_str() == wanted)
            .ok_or_else(|| format!("{text:?} is neither fast nor verified"))
    }
}

impl std::fmt::Display for DbRecycle {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A `postgres://` or `postgresql://` URL, checked for form (not reachability).
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn parse(text: &str) -> Result<DatabaseUrl, String> {
        let url = url::Url::parse(text).map_err(|error| format!("not a URL ({error})"))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(format!(
                "scheme must be postgres:// or postgresql://, not {}://",
                url.scheme()
            ));
        }
        Ok(DatabaseUrl(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DatabaseUrl {
    // The URL may hold a password: debug output shows only that there is one.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match url::Url::parse(&self.0) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("***"));
                write!(formatter, "{url}")
            }
            _ => write!(formatter, "{}", self.0),
        }
    }
}

/// A configuration variable that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

/// The configuration of a server.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: DatabaseUrl,
    pub bind: SocketAddr,
    /// `PROCESSES`: copies of the server sharing `BIND` (1: this process alone). See
    /// [`crate::process_group`].
    pub processes: NonZeroUsize,
    /// Request-serving threads; `None` means the variant's default.
    pub workers: Option<NonZeroUsize>,
    /// Database connections; `None` means the variant's default.
    pub db_pool_size: Option<NonZeroUsize>,
    /// How long a request may wait for a database connection before it gets 503.
    pub db_wait_timeout: Duration,
    /// Whether a checkout runs a query to verify the connection.
    pub db_recycle: DbRecycle,
    /// Whether statements are prepared (see [`DbStatements`]).
    pub db_statements: DbStatements,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup` (the environment, or a table in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let present = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let error = |variable, problem: String| ConfigError { variable, problem };

        let database_url = present("DATABASE_URL").ok_or_else(|| {
            error(
                "DATABASE_URL",
                "is required (postgres://user@host:port/db)".into(),
            )
        })?;
        let database_url = DatabaseUrl::parse(database_url.trim())
            .map_err(|problem| error("DATABASE_URL", problem))?;

        let bind = present("BIND").unwrap_or_else(|| DEFAULT_BIND.to_string());
        let bind = bind.trim().parse().map_err(|_| {
            error(
                "BIND",
                format!("{bind:?} is not an address and port such as 127.0.0.1:8000"),
            )
        })?;

        let processes = match present("PROCESSES") {
            None => NonZeroUsize::MIN,
            Some(text) => parse_positive(&text).ok_or_else(|| {
                error(
                    "PROCESSES",
                    format!("{text:?} is not a whole number of at least 1"),
                )
            })?,
        };
        let workers = match present("WORKERS") {
            None => None,
            Some(text) => Some(parse_positive(&text).ok_or_else(|| {
                error(
                    "WORKERS",
                    format!("{text:?} is not a whole number of at least 1"),
                )
            })?),
        };
        let db_pool_size = match present("DB_POOL_SIZE") {
            None => None,
            Some(text) => Some(parse_positive(&text).ok_or_else(|| {
                error(
                    "DB_POOL_SIZE",
                    format!("{text:?} is not a whole number of at least 1"),
                )
            })?),
        };
        let db_wait_timeout = match present("DB_WAIT_TIMEOUT_MS") {
            None => Duration::from_millis(DEFAULT_DB_WAIT_TIMEOUT_MS),
            Some(text) => text
                .trim()
                .parse()
                .ok()
                .filter(|&millis: &u64| millis >= 1)
                .map(Duration::from_millis)
                .ok_or_else(|| {
                    error(
                        "DB_WAIT_TIMEOUT_MS",
                        format!("{text:?} is not a number of milliseconds"),
                    )
                })?,
        };
        let db_recycle = match present("DB_RECYCLE") {
            None => DbRecycle::default(),
            Some(text) => {
                DbRecycle::parse(&text).map_err(|problem| error("DB_RECYCLE", problem))?
            }
        };
        let db_statements = match present("DB_STATEMENTS") {
            None => DbStatements::default(),
            Some(text) => {
                DbStatements::parse(&text).map_err(|problem| error("DB_STATEMENTS", problem))?
            }
        };
        Ok(Config {
            database_url,
            bind,
            processes,
            workers,
            db_pool_size,
            db_wait_timeout,
            db_recycle,
            db_statements,
        })
    }

    /// The configuration if `variant` can run it: `DB_STATEMENTS=unprepared` only where the
    /// variant's driver can.
    pub fn supported_by(self, variant: &VariantInfo) -> Result<Config, ConfigError> {
        match (self.db_statements, variant.unprepared_statements) {
            (DbStatements::Unprepared, Err(reason)) => Err(ConfigError {
                variable: "DB_STATEMENTS",
                problem: format!("{} cannot run unprepared: {reason}", variant.name),
            }),
            _ => Ok(self),
        }
    }

    /// `WORKERS`, or the variant's default.
    pub fn workers_or(&self, default: usize) -> usize {
        self.workers.map_or(default.max(1), NonZeroUsize::get)
    }

    /// `WORKERS`, or the CPUs available to the process: the default of the async variants.
    pub fn workers_or_cpus(&self) -> usize {
        self.workers_or(available_cpus().get())
    }

    /// `DB_POOL_SIZE`, or the variant's default (usually derived from the workers).
    pub fn db_pool_size_or(&self, default: usize) -> usize {
        self.db_pool_size.map_or(default.max(1), NonZeroUsize::get)
    }
}

fn parse_positive(text: &str) -> Option<NonZeroUsize> {
    text.trim().parse().ok()
}

/// The CPUs this process may run on (affinity and cgroup quota aware).
pub fn available_cpus() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}

/// The text of `--help`.
pub fn help_text(variant: &VariantInfo) -> String {
    format!(
        "{name} {version}: {summary}\n\n\
         Usage: {name}   (configured by environment variables only)\n\n\
         Environment:\n  \
           DATABASE_URL        required; postgres://user[:password]@host[:port]/dbname\n  \
           BIND                address to listen on (default {bind}; port 0 picks a free port)\n  \
           PROCESSES           copies of the server sharing BIND with SO_REUSEPORT, each with its own\n                      \
                               WORKERS and DB_POOL_SIZE (default 1: this process alone)\n  \
           WORKERS             request-serving threads (default: {workers})\n  \
           DB_POOL_SIZE        database connections (default: {pool})\n  \
           DB_WAIT_TIMEOUT_MS  how long a request may wait for a connection before 503 (default {wait})\n  \
           DB_RECYCLE          fast (default) or verified: whether checking a connection out runs a query;\n                      \
                               here: {recycle}\n  \
           DB_STATEMENTS       prepared (default) or unprepared, for a pooler in transaction mode;\n                      \
                               here: {statements}\n  \
           RUST_LOG            log filter for stderr, e.g. info or debug (default warn)\n\n\
         On start it prints one line, `listening on http://ADDR`, on stdout.\n\
         SIGTERM or SIGINT: stop accepting, finish in-flight requests, exit within {deadline} s.\n\
         With PROCESSES above 1 the started process supervises the copies: it prints the line once\n\
         all of them listen, passes SIGTERM and SIGINT on, exits 0 if all drained cleanly and {died}\n\
         if one died while serving (it is not restarted).\n",
        name = variant.name,
        version = crate::VERSION,
        summary = variant.summary,
        bind = DEFAULT_BIND,
        workers = variant.workers_default,
        pool = variant.pool_default,
        recycle = variant.recycle_meaning,
        statements = match variant.unprepared_statements {
            Ok(meaning) => format!("unprepared {meaning}"),
            Err(reason) => format!("unprepared is refused: {reason}"),
        },
        wait = DEFAULT_DB_WAIT_TIMEOUT_MS,
        deadline = SHUTDOWN_DEADLINE.as_secs(),
        died = EXIT_PROCESS_DIED,
    )
}

/// Logs to stderr, filtered by `RUST_LOG` (default `warn`). Stdout is kept for the one
/// `listening on` line that tests and the benchmark read.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Prints the line tests and the benchmark wait for, and flushes it.
pub fn announce_listening(address: SocketAddr) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "listening on http://{address}");
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config_from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let table: HashMap<String, String> = pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        Config::from_lookup(|name| table.get(name).cloned())
    }

    #[test]
    fn errors_name_the_variable() {
        let cases: [(&[(&str, &str)], &str); 8] = [
            (&[], "DATABASE_URL"),
            (&[("DATABASE_URL", "mysql://x/y")], "DATABASE_URL"),
            (
                &[("DATABASE_URL", "postgres://u@h/d"), ("BIND", "nowhere")],
                "BIND",
            ),
            (
                &[("DATABASE_URL", "postgres://u@h/d"), ("WORKERS", "0")],
                "WORKERS",
            ),
            (
                &[("DATABASE_URL", "postgres://u@h/d"), ("PROCESSES", "0")],
                "PROCESSES",
            ),
            (
                &[
                    ("DATABASE_URL", "postgres://u@h/d"),
                    ("DB_WAIT_TIMEOUT_MS", "x"),
                ],
                "DB_WAIT_TIMEOUT_MS",
            ),
            (
                &[
                    ("DATABASE_URL", "postgres://u@h/d"),
                    ("DB_RECYCLE", "often"),
                ],
                "DB_RECYCLE",
            ),
            (
                &[
                    ("DATABASE_URL", "postgres://u@h/d"),
                    ("DB_STATEMENTS", "sometimes"),
                ],
                "DB_STATEMENTS",
            ),
        ];
        for (pairs, variable) in cases {
            assert_eq!(config_from(pairs).unwrap_err().variable, variable);
        }
    }

    #[test]
    fn defaults_apply() {
        let config = config_from(&[("DATABASE_URL", "postgres://u:secret@h/d")]).unwrap();
        assert_eq!(config.bind.to_string(), DEFAULT_BIND);
        assert_eq!(config.db_pool_size_or(7), 7);
        assert_eq!(config.workers_or(5), 5);
        assert_eq!(config.db_recycle, DbRecycle::Fast);
        assert!(!format!("{:?}", config.database_url).contains("secret"));
    }

    #[test]
    fn db_recycle_reads_both_policies_in_any_case() {
        for (text, expected) in [
            ("fast", DbRecycle::Fast),
            ("verified", DbRecycle::Verified),
            (" Verified ", DbRecycle::Verified),
            ("FAST", DbRecycle::Fast),
        ] {
            let config =
                config_from(&[("DATABASE_URL", "postgres://u@h/d"), ("DB_RECYCLE", text)]).unwrap();
            assert_eq!(config.db_recycle, expected, "{text:?}");
        }
        let error = config_from(&[("DATABASE_URL", "postgres://u@h/d"), ("DB_RECYCLE", "yes")])
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"DB_RECYCLE: "yes" is neither fast nor verified"#
        );
        assert_eq!(
            serde_json::to_string(&DbRecycle::Verified).unwrap(),
            r#""verified""#
        );
    }

    #[test]
    fn help_lists_every_variable_and_the_variants_recycling() {
        let variant = VariantInfo {
            name: "example",
            summary: "an example",
            workers_default: "two",
            pool_default: "three",
            recycle_meaning: "nothing to check out",
            unprepared_statements: Err("it prepares everything"),
        };
        let help = help_text(&variant);
        for variable in ENV_VARS {
            assert!(help.contains(variable), "{variable} missing from:\n{help}");
        }
        assert!(
            help.contains("\n                      here: nothing to check out\n"),
            "{help}"
        );
        assert!(
            help.contains("here: unprepared is refused: it prepares everything\n"),
            "{help}"
        );
        let unprepared = config_from(&[
            ("DATABASE_URL", "postgres://u@h/d"),
            ("DB_STATEMENTS", "Unprepared"),
        ])
        .unwrap();
        assert_eq!(unprepared.db_statements, DbStatements::Unprepared);
        assert_eq!(
            unprepared.supported_by(&variant).unwrap_err().to_string(),
            "DB_STATEMENTS: example cannot run unprepared: it prepares everything"
        );
    }
}
