//! `bakeoff selftest`: the engine beside wrk and oha on the fastest endpoint, same machine, same
//! placement, so the report can show that the engine is not what limits the figures.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bakeoff_testkit::server::{ServerEnvironment, ServerProcess};

use crate::engine::{self, LiveCounters, LoadSpec, PlannedRequest};
use crate::format::{Table, group_thousands};
use crate::harness::flags::parse_duration;
use crate::harness::servers::url_address;
use crate::placement::PlacementArgs;
use crate::results::run::Percentiles;
use crate::results::selftest::{SelftestResults, ToolFigure};
use crate::results::setup::Placement;
use crate::results::vocabulary::Variant;
use crate::stats::median;

/// Splits `http://host:port/path?query` into an address and the path with its query.
fn split_url(url: &str) -> Result<(SocketAddr, String)> {
    let parsed = url::Url::parse(url).with_context(|| format!("{url:?} is not a URL"))?;
    anyhow::ensure!(
        parsed.scheme() == "http",
        "{url:?}: only http:// URLs are loaded"
    );
    let mut path = parsed.path().to_string();
    if let Some(query) = parsed.query() {
        path.push('?');
        path.push_str(query);
    }
    Ok((url_address(url)?, path))
}

/// The options of `bakeoff selftest`.
#[derive(Debug, Clone, clap::Args)]
pub struct SelftestArgs {
    /// The variant whose /version is loaded (no database needed).
    #[arg(long, value_enum, default_value_t = Variant::AxumTokioPostgres)]
    pub variant: Variant,
    /// Load this running server's URL instead of starting a variant.
    #[arg(long)]
    pub url: Option<String>,
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Rounds of (wrk, engine, oha), alternated so that drift hits every tool alike.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    #[command(flatten)]
    pub placement: PlacementArgs,
    /// Use the debug build of the variant.
    #[arg(long)]
    pub debug: bool,
    /// Write selftest.json here as well.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

/// `bakeoff selftest`.
pub async fn selftest(args: SelftestArgs) -> Result<SelftestResults> {
    let placement = Placement::choose(&args.placement).map_err(anyhow::Error::msg)?;
    let mut server = None;
    let url = match &args.url {
        Some(url) => url.trim_end_matches('/').to_string() + "/version",
        None => {
            let binary =
                bakeoff_testkit::server::workspace_binary(&args.variant.name(), !args.debug)?;
            let mut command = placement.server_command(&binary);
            // /version needs no database: an address where none listens is enough, since an
            // unreachable database is not fatal at startup. WORKERS is the variant's own default
            // for the CPUs it is pinned to, as in `bakeoff run`.
            let mut environment = ServerEnvironment::new("postgres://bakeoff@127.0.0.1:1/none");
            environment.log_filter = "off".to_string();
            environment.apply_to(&mut command);
            let process =
                tokio::task::spawn_blocking(move || ServerProcess::spawn(command)).await??;
            let url = format!("{}/version", process.base_url());
            server = Some(process);
            url
        }
    };
    let (address, path) = split_url(&url)?;
    eprintln!(
        "selftest: {url}, {} connections, {} s per tool and round; {}",
        args.connections,
        args.duration.as_secs_f64(),
        placement.note
    );

    let mut figures = Vec::new();
    for round in 1..=args.rounds.max(1) {
        figures.push(run_wrk(&url, &args, &placement, round));
        figures.push(run_engine(address, &path, &args, &placement, round).await?);
        figures.push(run_oha(&url, &args, &placement, round));
        for figure in &figures[figures.len() - 3..] {
            eprintln!(
                "round {round}: {:<8} {:>10} req/s {:>6} µs CPU/req{}",
                figure.tool,
                group_thousands(figure.requests_per_second.round() as i64),
                figure
                    .cpu_us_per_request
                    .map_or_else(|| "–".into(), |v| format!("{v:.1}")),
                figure
                    .note
                    .as_ref()
                    .map_or_else(String::new, |note| format!("  ({note})"))
            );
        }
    }
    if let Some(process) = server {
        let _ =
            tokio::task::spawn_blocking(move || process.terminate(Duration::from_secs(5))).await;
    }

    let median_of = |tool: &str, figure_of: fn(&ToolFigure) -> Option<f64>| {
        let values: Vec<f64> = figures
            .iter()
            .filter(|figure| figure.tool == tool && figure.note.is_none())
            .filter_map(figure_of)
            .collect();
        (!values.is_empty()).then(|| median(&values))
    };
    let rate: fn(&ToolFigure) -> Option<f64> = |figure| Some(figure.requests_per_second);
    let cpu: fn(&ToolFigure) -> Option<f64> = |figure| figure.cpu_us_per_request;
    let ratio = |figure_of: fn(&ToolFigure) -> Option<f64>, other: &str| match (
        median_of("bakeoff", figure_of),
        median_of(other, figure_of),
    ) {
        (Some(engine), Some(other)) if other > 0.0 => Some(engine / other),
        _ => None,
    };
    let results = SelftestResults {
        started_at: crate::machine::utc_now().0,
        machine: crate::results::setup::Machine::describe(),
        url,
        connections: args.connections,
        duration_seconds: args.duration.as_secs_f64(),
        placement,
        engine_over_wrk: ratio(rate, "wrk"),
        engine_over_oha: ratio(rate, "oha"),
        engine_cpu_over_wrk: ratio(cpu, "wrk"),
        engine_cpu_over_oha: ratio(cpu, "oha"),
        figures,
    };
    if let Some(directory) = &args.out {
        std::fs::create_dir_all(directory)?;
        std::fs::write(
            directory.join("selftest.json"),
            serde_json::to_string_pretty(&results)?,
        )?;
    }
    Ok(results)
}

/// The selftest as a table with the verdict.
pub fn render(results: &SelftestResults) -> String {
    let mut table = Table::new(&[
        "tool",
        "round",
        "req/s",
        "p50 ms",
        "p99 ms",
        "CPU µs/req",
        "note",
    ]);
    for figure in &results.figures {
        table.rows.push(vec![
            figure.tool.clone(),
            figure.round.to_string(),
            group_thousands(figure.requests_per_second.round() as i64),
            figure
                .p50_ms
                .map_or_else(|| "–".into(), |v| format!("{v:.2}")),
            figure
                .p99_ms
                .map_or_else(|| "–".into(), |v| format!("{v:.2}")),
            figure
                .cpu_us_per_request
                .map_or_else(|| "–".into(), |v| format!("{v:.1}")),
            figure.note.clone().unwrap_or_default(),
        ]);
    }
    let mut text = format!(
        "\n{}\n{}; {} connections, {} s each\n\n{}",
        results.machine.line(),
        results.placement.note,
        results.connections,
        results.duration_seconds,
        table.terminal()
    );
    let ratio =
        |value: Option<f64>| value.map_or_else(|| "n/a".to_string(), |v| format!("{v:.2}×"));
    text.push_str(&format!(
        "\nbakeoff engine, median round: {} wrk's request rate, {} oha's; CPU per request {} wrk's, {} oha's\n",
        ratio(results.engine_over_wrk),
        ratio(results.engine_over_oha),
        ratio(results.engine_cpu_over_wrk),
        ratio(results.engine_cpu_over_oha)
    ));
    text
}

fn missing(tool: &str, round: usize, note: &str) -> ToolFigure {
    ToolFigure {
        tool: tool.into(),
        round,
        requests_per_second: 0.0,
        p50_ms: None,
        p99_ms: None,
        cpu_us_per_request: None,
        note: Some(note.into()),
    }
}

/// What an outside load tool left when it ran to the end: its standard output, and the CPU time
/// it spent, which is what sending its requests cost it.
struct ToolRun {
    stdout: Vec<u8>,
    cpu: Duration,
}

/// Runs `tool` with `arguments` on the engine CPUs and waits for it. A tool that is not
/// installed or fails gives instead the figure that says so, with `install` as the hint.
fn run_tool(
    tool: &str,
    arguments: &[String],
    placement: &Placement,
    round: usize,
    install: &str,
) -> Result<ToolRun, ToolFigure> {
    let cpu_before = children_cpu();
    match placement.engine_command(tool).args(arguments).output() {
        Ok(output) if output.status.success() => Ok(ToolRun {
            stdout: output.stdout,
            cpu: children_cpu().saturating_sub(cpu_before),
        }),
        Ok(_) | Err(_) => Err(missing(
            tool,
            round,
            &format!("{tool} not installed or failed ({install})"),
        )),
    }
}

fn run_wrk(url: &str, args: &SelftestArgs, placement: &Placement, round: usize) -> ToolFigure {
    let threads = placement.engine_threads.min(args.connections).max(1);
    let arguments = [
        format!("-t{threads}"),
        format!("-c{}", args.connections),
        format!("-d{}s", args.duration.as_secs().max(1)),
        "--latency".to_string(),
        url.to_string(),
    ];
    let run = match run_tool("wrk", &arguments, placement, round, "apt-get install wrk") {
        Ok(run) => run,
        Err(missing) => return missing,
    };
    let text = String::from_utf8_lossy(&run.stdout);
    let mut figure =
        parse_wrk(&text, round).unwrap_or_else(|| missing("wrk", round, "unreadable wrk output"));
    figure.cpu_us_per_request = per_request(run.cpu, figure.requests_per_second, args.duration);
    figure
}

/// CPU time of the waited-for child processes so far (user + system).
fn children_cpu() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(Duration::ZERO, |usage| {
        let time = |value: nix::sys::time::TimeVal| {
            Duration::from_secs(value.tv_sec().max(0) as u64)
                + Duration::from_micros(value.tv_usec().max(0) as u64)
        };
        time(usage.user_time()) + time(usage.system_time())
    })
}

fn per_request(cpu: Duration, rate: f64, duration: Duration) -> Option<f64> {
    let requests = rate * duration.as_secs().max(1) as f64;
    (requests > 0.0 && !cpu.is_zero()).then(|| cpu.as_secs_f64() * 1e6 / requests)
}

/// Reads `Requests/sec:` and the `--latency` distribution of wrk's output.
pub fn parse_wrk(text: &str, round: usize) -> Option<ToolFigure> {
    let rate = text.lines().find_map(|line| {
        line.trim()
            .strip_prefix("Requests/sec:")
            .and_then(|value| value.trim().parse::<f64>().ok())
    })?;
    let percentile = |name: &str| {
        text.lines().find_map(|line| {
            let mut parts = line.split_whitespace();
            (parts.next()? == name).then_some(())?;
            wrk_millis(parts.next()?)
        })
    };
    Some(ToolFigure {
        tool: "wrk".into(),
        round,
        requests_per_second: rate,
        p50_ms: percentile("50%"),
        p99_ms: percentile("99%"),
        cpu_us_per_request: None,
        note: None,
    })
}

fn wrk_millis(value: &str) -> Option<f64> {
    let split = value.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => number / 1_000.0,
        "ms" => number,
        "s" => number * 1_000.0,
        "m" => number * 60_000.0,
        _ => return None,
    })
}

fn run_oha(url: &str, args: &SelftestArgs, placement: &Placement, round: usize) -> ToolFigure {
    let arguments = [
        "-z".to_string(),
        format!("{}s", args.duration.as_secs().max(1)),
        "-c".to_string(),
        args.connections.to_string(),
        "--no-tui".to_string(),
        "--output-format".to_string(),
        "json".to_string(),
        url.to_string(),
    ];
    let run = match run_tool("oha", &arguments, placement, round, "cargo install oha") {
        Ok(run) => run,
        Err(missing) => return missing,
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&run.stdout) else {
        return missing("oha", round, "unreadable oha output");
    };
    let seconds = |pointer: &str| value.pointer(pointer).and_then(serde_json::Value::as_f64);
    let rate = seconds("/summary/requestsPerSec").unwrap_or(0.0);
    ToolFigure {
        tool: "oha".into(),
        round,
        requests_per_second: rate,
        p50_ms: seconds("/latencyPercentiles/p50").map(|s| s * 1_000.0),
        p99_ms: seconds("/latencyPercentiles/p99").map(|s| s * 1_000.0),
        cpu_us_per_request: per_request(run.cpu, rate, args.duration),
        note: None,
    }
}

async fn run_engine(
    address: SocketAddr,
    path: &str,
    args: &SelftestArgs,
    placement: &Placement,
    round: usize,
) -> Result<ToolFigure> {
    let spec = LoadSpec {
        address,
        requests: Arc::new(vec![PlannedRequest::new(path, None)?]),
        connections: args.connections,
        threads: placement.engine_threads,
        warmup: Duration::ZERO,
        duration: Duration::from_secs(args.duration.as_secs().max(1)),
        rate: None,
        timeout: Duration::from_secs(5),
        check_every: u64::MAX,
        cpus: placement.engine_cpus.clone(),
        seed: round as u64,
        allow_remote: false,
        mark: None,
    };
    let live = Arc::new(LiveCounters::default());
    let outcome = tokio::task::spawn_blocking(move || engine::run(&spec, &live)).await??;
    if outcome.ok == 0 {
        bail!("the engine got no successful answer from {address}{path}");
    }
    let latency = Percentiles::of(&outcome.latency);
    Ok(ToolFigure {
        tool: "bakeoff".into(),
        round,
        requests_per_second: outcome.ok_per_second(),
        p50_ms: Some(latency.p50 as f64 / 1_000.0),
        p99_ms: Some(latency.p99 as f64 / 1_000.0),
        cpu_us_per_request: (outcome.total_responses > 0)
            .then(|| outcome.engine_cpu.as_secs_f64() * 1e6 / outcome.total_responses as f64),
        note: (outcome.error_count() > 0).then(|| format!("{} errors", outcome.error_count())),
    })
}

/// Reads a selftest.json written earlier.
pub fn read(path: &Path) -> Result<SelftestResults> {
    let text = std::fs::read_to_string(path)?;
    Ok(serde_json::from_str(&text)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn reads_wrk_output() {
        let text = "Running 10s test @ http://127.0.0.1:8000/version\n  1 threads and 64 connections\n  Latency Distribution\n     50%  412.00us\n     75%  500.00us\n     90%  1.20ms\n     99%  2.50ms\n  100000 requests in 10.00s, 15.00MB read\nRequests/sec:  10000.50\nTransfer/sec:      1.50MB\n";
        let figure = super::parse_wrk(text, 1).unwrap();
        assert_eq!(figure.requests_per_second, 10000.5);
        assert_eq!(figure.p50_ms, Some(0.412));
        assert_eq!(figure.p99_ms, Some(2.5));
    }
}
