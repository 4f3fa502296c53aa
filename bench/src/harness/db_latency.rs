//! The database across a network: for a `--db-latency` level above zero a server reaches
//! PostgreSQL through a delay line ([`crate::delay_line`], run as `bakeoff delay-proxy`, pinned
//! where the engine runs), and the run measures what it set: timed `SELECT 1` round trips through
//! the line and around it. The monitor's own queries always go around it.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::{Child, ChildStdin, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::results::server::LatencyCheck;
use crate::results::setup::{Placement, RoundTrip};

/// `SELECT 1` round trips timed each way, per level.
const PROBES: usize = 200;
/// How far the measured added time may be from the setting before the report says so.
pub const TOLERANCE_PERCENT: f64 = 10.0;

/// A delay line process in front of PostgreSQL; killed when dropped (and ends by itself when the
/// run's process is gone: its standard input closes).
pub struct DelayProxy {
    child: Child,
    /// Held open: the proxy exits when it closes.
    _lifeline: ChildStdin,
    pub address: SocketAddr,
    pub round_trip: RoundTrip,
}

impl DelayProxy {
    /// Starts `bakeoff delay-proxy` in front of `upstream`, on the engine's CPUs.
    pub fn start(
        upstream: SocketAddr,
        round_trip: RoundTrip,
        placement: &Placement,
    ) -> Result<DelayProxy> {
        let bakeoff = std::env::current_exe().context("locating the bakeoff binary")?;
        let mut command = placement.engine_command(&bakeoff);
        command
            .arg("delay-proxy")
            .arg("--upstream")
            .arg(upstream.to_string())
            .arg("--round-trip")
            .arg(round_trip.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {} delay-proxy", bakeoff.display()))?;
        let lifeline = child.stdin.take().context("the delay proxy's stdin")?;
        let stdout = child.stdout.take().context("the delay proxy's stdout")?;
        let mut first_line = String::new();
        BufReader::new(stdout)
            .read_line(&mut first_line)
            .context("reading the delay proxy's address")?;
        let address = first_line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|address| address.parse().ok());
        let Some(address) = address else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the delay proxy did not start (it printed {first_line:?})");
        };
        Ok(DelayProxy {
            child,
            _lifeline: lifeline,
            address,
            round_trip,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds the proxy has used so far.
    pub fn cpu_seconds(&self) -> Option<f64> {
        crate::processes::read_tree(self.pid()).map(|sample| sample.cpu_seconds)
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The TCP address of a PostgreSQL URL (`postgres://user@host:port/db`).
pub fn database_address(url: &str) -> Result<SocketAddr> {
    let parsed = url::Url::parse(url).context("DATABASE_URL is not a URL")?;
    let host = parsed
        .host_str()
        .filter(|host| !host.is_empty())
        .context("--db-latency needs a DATABASE_URL with a TCP host (not a Unix socket)")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = parsed.port().unwrap_or(5432);
    (host, port)
        .to_socket_addrs()
        .with_context(|| format!("resolving {host}:{port}"))?
        .next()
        .with_context(|| format!("{host}:{port} resolves to no address"))
}

/// `url` with its host and port replaced by `address` (a server's URL through the proxy).
pub fn through(url: &str, address: SocketAddr) -> Result<String> {
    let mut parsed = url::Url::parse(url).context("DATABASE_URL is not a URL")?;
    parsed
        .set_ip_host(address.ip())
        .map_err(|()| anyhow::anyhow!("cannot set the host of the database URL"))?;
    parsed
        .set_port(Some(address.port()))
        .map_err(|()| anyhow::anyhow!("cannot set the port of the database URL"))?;
    Ok(parsed.to_string())
}

impl LatencyCheck {
    /// What the line added, in milliseconds.
    pub fn added_ms(&self) -> f64 {
        (self.through_us - self.around_us) / 1e3
    }

    /// How far the added time is from the setting, in percent of the setting.
    pub fn off_by_percent(&self) -> f64 {
        if self.set_ms <= 0.0 {
            return 0.0;
        }
        (self.added_ms() - self.set_ms) / self.set_ms * 100.0
    }

    pub fn within_tolerance(&self) -> bool {
        self.off_by_percent().abs() <= TOLERANCE_PERCENT
    }
}

/// Times `SELECT 1` round trips at `around_url` and at `through_url`, interleaved so that both
/// see the same machine.
pub async fn check(
    around_url: &str,
    through_url: &str,
    round_trip: RoundTrip,
) -> Result<LatencyCheck> {
    let around = connect(around_url).await?;
    let through = connect(through_url).await?;
    let mut around_times = Vec::with_capacity(PROBES);
    let mut through_times = Vec::with_capacity(PROBES);
    // A few untimed first: the first query of a connection pays for its caches.
    for _ in 0..5 {
        around.simple_query("SELECT 1").await?;
        through.simple_query("SELECT 1").await?;
    }
    for _ in 0..PROBES {
        around_times.push(time_select_one(&around).await?);
        through_times.push(time_select_one(&through).await?);
    }
    Ok(LatencyCheck {
        set_ms: round_trip.milliseconds(),
        around_us: crate::stats::median(&around_times),
        through_us: crate::stats::median(&through_times),
        probes: PROBES,
    })
}

async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to {}", bakeoff_testkit::redact(url)))?;
    tokio::spawn(connection);
    Ok(client)
}

async fn time_select_one(client: &tokio_postgres::Client) -> Result<f64> {
    let started = Instant::now();
    client
        .simple_query("SELECT 1")
        .await
        .context("timing SELECT 1")?;
    Ok(started.elapsed().as_secs_f64() * 1e6)
}

/// Waits until a connection through the proxy answers (the proxy listens before it is asked).
pub async fn wait_until_reachable(through_url: &str) -> Result<()> {
    let started = Instant::now();
    loop {
        match connect(through_url).await {
            Ok(_) => return Ok(()),
            Err(error) if started.elapsed() > Duration::from_secs(10) => return Err(error),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_pointed_at_the_proxy() {
        let url = "postgres://bakeoff_app@127.0.0.1:5544/bakeoff?connect_timeout=3";
        assert_eq!(
            database_address(url).unwrap(),
            "127.0.0.1:5544".parse().unwrap()
        );
        assert_eq!(
            through(url, "127.0.0.1:4000".parse().unwrap()).unwrap(),
            "postgres://bakeoff_app@127.0.0.1:4000/bakeoff?connect_timeout=3"
        );
        assert!(database_address("postgres:///bakeoff?host=/run/postgresql").is_err());
    }

    #[test]
    fn a_check_says_how_far_it_is_off() {
        let check = LatencyCheck {
            set_ms: 2.0,
            around_us: 40.0,
            through_us: 2_220.0,
            probes: 200,
        };
        assert!((check.added_ms() - 2.18).abs() < 1e-9);
        assert!((check.off_by_percent() - 9.0).abs() < 1e-9);
        assert!(check.within_tolerance());
        let off = LatencyCheck {
            through_us: 2_300.0,
            ..check
        };
        assert!(!off.within_tolerance());
    }
}
