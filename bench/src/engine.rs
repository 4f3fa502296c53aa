//! The load engine: N keep-alive HTTP/1.1 connections (the lean client of [`crate::http1`]) in
//! a closed loop (each connection sends its next request as soon as the previous answer is
//! read) or an open loop (requests leave on a fixed schedule, and a request that had to wait for
//! its connection counts its latency from the time it was due, not from when it could be sent:
//! coordinated omission corrected, as wrk2 does; the engine's own timer lateness, up to a
//! millisecond, is not charged to the server).
//!
//! The engine must not be what is measured, so the hot path is plain: one single-threaded tokio
//! runtime per engine thread (pinned to the engine's CPUs when asked), requests serialized before
//! the clock starts, bodies counted or compared in the read buffer and never copied, and one
//! HdrHistogram per thread at microsecond resolution, so memory stays bounded whatever the
//! duration (a 16 KiB buffer per connection, a histogram per thread).
//!
//! Every run is also recorded over time ([`Series`]): per interval (100 ms, or a second for runs
//! longer than a minute) the answers by status class, the failures by kind and the interval's
//! latency percentiles. Each thread records the interval it is in into a small histogram (two
//! significant digits) and, when the interval ends, keeps only its non-empty buckets (a few
//! hundred bytes); the threads' intervals are merged when the run ends. Warm-up effects, pauses
//! and recovery from a fault are invisible in a run's totals and plain in its series.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::Either;
use hdrhistogram::Histogram;

use crate::http1::{self, BodyUse, Connection, GetRequest, TransportError};
use crate::results::series::{ErrorKind, IntervalFigures, Series};
use crate::results::setup::CpuList;

/// The highest latency the histograms hold (one hour, in microseconds); longer ones saturate.
const HISTOGRAM_MAX_MICROS: u64 = 3_600_000_000;
/// Three significant digits: a recorded value is within 0.1 % of the true one.
const HISTOGRAM_SIGNIFICANT_DIGITS: u8 = 3;
/// Bounds that keep the engine a benchmark and not a flood.
pub const MAX_CONNECTIONS: usize = 10_000;
pub const MAX_DURATION: Duration = Duration::from_secs(3_600);
/// How long a failed connection waits before it tries again, so a dead server is not spun on.
const RECONNECT_PAUSE: Duration = Duration::from_millis(20);
/// An interval's percentiles need no more than two significant digits (1 %), and the buckets of
/// such a histogram are few enough to keep for every interval of an hour.
const INTERVAL_SIGNIFICANT_DIGITS: u8 = 2;
/// Runs up to this long are recorded per [`SHORT_INTERVAL`], longer ones per [`LONG_INTERVAL`].
const SHORT_SERIES_LIMIT: Duration = Duration::from_secs(60);
const SHORT_INTERVAL: Duration = Duration::from_millis(100);
const LONG_INTERVAL: Duration = Duration::from_secs(1);

/// The interval of the series of a run measured for `duration`: 100 ms, or one second for runs
/// longer than a minute (at most 3,600 intervals whatever the duration).
pub fn series_interval(duration: Duration) -> Duration {
    if duration > SHORT_SERIES_LIMIT {
        LONG_INTERVAL
    } else {
        SHORT_INTERVAL
    }
}

/// One request the engine may send: its path and query, and optionally the exact body a 2xx
/// answer must carry.
#[derive(Debug, Clone)]
pub struct PlannedRequest {
    pub path: String,
    pub expected: Option<Bytes>,
}

impl PlannedRequest {
    /// A request for `path_and_query` (which must start with `/`).
    pub fn new(path_and_query: &str, expected: Option<Bytes>) -> anyhow::Result<PlannedRequest> {
        http1::check_path(path_and_query).map_err(anyhow::Error::msg)?;
        Ok(PlannedRequest {
            path: path_and_query.to_string(),
            expected,
        })
    }
}

/// What a run of the engine does.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub address: SocketAddr,
    /// The requests to send; each connection picks among them at random.
    pub requests: Arc<Vec<PlannedRequest>>,
    pub connections: usize,
    /// Engine threads, each with its own single-threaded runtime; connections are spread over them.
    pub threads: usize,
    /// Load sent before measuring starts, not recorded.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// Open loop at this many requests per second in total; `None` is a closed loop.
    pub rate: Option<f64>,
    /// A request not answered within this is counted as a timeout and its connection replaced.
    pub timeout: Duration,
    /// Every how-many-th 2xx response of a connection has its body compared with the expected one
    /// (1 checks all).
    pub check_every: u64,
    /// CPUs the engine threads are pinned to; `None` leaves them to the scheduler.
    pub cpus: Option<CpuList>,
    /// Seeds the request choice, so runs are repeatable.
    pub seed: u64,
    /// Sending to anything but loopback needs this to be said explicitly.
    pub allow_remote: bool,
    /// A moment the caller marks during the run (a fault's end), and the engine watches what
    /// was waiting then; `None` for a plain run.
    pub mark: Option<Arc<Mark>>,
}

/// A moment a caller marks while the engine runs: the database back after a fault. The engine
/// counts, per answer, whether its request was sent before the mark and completed after it:
/// the backlog that was waiting when the database returned, read from the requests themselves
/// and not from a throughput level.
#[derive(Debug, Default)]
pub struct Mark {
    at: OnceLock<Instant>,
}

impl Mark {
    /// Marks `at` (the first call counts).
    pub fn set(&self, at: Instant) {
        let _ = self.at.set(at);
    }

    pub fn get(&self) -> Option<Instant> {
        self.at.get().copied()
    }
}

/// What the engine saw around a [`Mark`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AfterMark {
    /// When the mark was set.
    pub mark: Option<Instant>,
    /// Requests sent before the mark and answered (or failed) after it: the backlog.
    pub waiting: u64,
    /// When the last of them completed: the backlog drained.
    pub drained: Option<Instant>,
    /// The first 2xx answer completed after the mark.
    pub first_ok: Option<Instant>,
}

impl AfterMark {
    fn count(&mut self, sent: Instant, done: Instant, ok: bool) {
        let Some(mark) = self.mark else { return };
        if done < mark {
            return;
        }
        if sent < mark {
            self.waiting += 1;
            self.drained = later(self.drained, Some(done));
        }
        if ok {
            self.first_ok = Some(self.first_ok.map_or(done, |first| first.min(done)));
        }
    }

    fn merge(&mut self, other: &AfterMark) {
        self.mark = self.mark.or(other.mark);
        self.waiting += other.waiting;
        self.drained = later(self.drained, other.drained);
        self.first_ok = match (self.first_ok, other.first_ok) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

fn later(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Everything the engine counts, at the end of a run.
#[derive(Debug, Clone)]
pub struct LoadOutcome {
    /// The measured window actually observed.
    pub measured: Duration,
    /// Responses in the window with a 2xx status (and, when checked, the expected body).
    pub ok: u64,
    /// Every response received in the window, whatever its status.
    pub responses: u64,
    /// Every response received during the whole run, warm-up and drain included.
    pub total_responses: u64,
    /// Body bytes received in the window.
    pub body_bytes: u64,
    /// Bodies compared with their expected value in the window.
    pub checked_bodies: u64,
    /// Latency of the responses in the window: in an open loop from the intended send time when
    /// the connection was still busy then (corrected), else from the actual send time.
    pub latency: Histogram<u64>,
    /// Open loop only: latency from the actual send time (what a tool without the correction
    /// reports).
    pub uncorrected: Option<Histogram<u64>>,
    /// Failures in the window by kind.
    pub errors: BTreeMap<ErrorKind, u64>,
    /// CPU time the engine threads used while sending (all threads together).
    pub engine_cpu: Duration,
    /// The window over time, merged across the engine threads.
    pub series: Series,
    /// Each interval's latency histogram (two significant digits), `None` where it had no
    /// answer: what merging the series of several engines exactly takes
    /// (`results::shard`).
    pub interval_latency: Vec<Option<Histogram<u64>>>,
    /// When the measured window began: the origin of the series, against which a caller places
    /// what it did during the run (a fault).
    pub window_start: Instant,
    /// Around the spec's mark, if it was set during the run.
    pub after_mark: Option<AfterMark>,
}

impl LoadOutcome {
    pub fn ok_per_second(&self) -> f64 {
        self.ok as f64 / self.measured.as_secs_f64().max(1e-9)
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// For a server measured despite deviations (a lenient target): a 2xx answer whose body
    /// differs from the contract's counts by its status, as answered, and neither as an error
    /// nor as a checked body. Returns how many there were.
    pub fn tolerate_body_deviations(&mut self) -> u64 {
        let deviating = self.errors.remove(&ErrorKind::Body).unwrap_or(0);
        self.ok += deviating;
        self.checked_bodies = self.checked_bodies.saturating_sub(deviating);
        deviating
    }
}

impl IntervalFigures {
    /// Every answer of the interval, whatever its status.
    pub fn answers(&self) -> u64 {
        self.ok
            + self.unavailable
            + self.other_status
            + self
                .errors
                .get(ErrorKind::Body.name().as_str())
                .copied()
                .unwrap_or(0)
    }
}

impl Series {
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }

    /// The start of interval `index`, in seconds from the window's start.
    pub fn start_seconds(&self, index: usize) -> f64 {
        index as f64 * self.interval_ms as f64 / 1_000.0
    }
}

impl ErrorKind {
    /// The name used in results and reports: `status-503`, `connect`, `timeout`, ...
    pub fn name(self) -> String {
        match self {
            ErrorKind::Status(code) => format!("status-{code}"),
            ErrorKind::UnavailableWithoutRetryAfter => "status-503-no-retry-after".into(),
            ErrorKind::Body => "body".into(),
            ErrorKind::Connect | ErrorKind::Timeout | ErrorKind::Reset | ErrorKind::Protocol => {
                self.transport().map_or("", TransportError::name).into()
            }
        }
    }

    fn transport(self) -> Option<TransportError> {
        match self {
            ErrorKind::Connect => Some(TransportError::Connect),
            ErrorKind::Timeout => Some(TransportError::Timeout),
            ErrorKind::Reset => Some(TransportError::Reset),
            ErrorKind::Protocol => Some(TransportError::Protocol),
            ErrorKind::Status(_) | ErrorKind::UnavailableWithoutRetryAfter | ErrorKind::Body => {
                None
            }
        }
    }
}

impl From<TransportError> for ErrorKind {
    fn from(error: TransportError) -> ErrorKind {
        match error {
            TransportError::Connect => ErrorKind::Connect,
            TransportError::Timeout => ErrorKind::Timeout,
            TransportError::Reset => ErrorKind::Reset,
            TransportError::Protocol => ErrorKind::Protocol,
        }
    }
}

/// Why the engine refused to start.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error(
        "{0} is not a loopback address; load goes only to 127.0.0.1 or ::1 unless --allow-remote is given"
    )]
    NotLoopback(SocketAddr),
    #[error("connections must be from 1 to {MAX_CONNECTIONS}, not {0}")]
    Connections(usize),
    #[error("the warm-up plus the duration must be at most {} s", MAX_DURATION.as_secs())]
    Duration,
    #[error("the rate must be a positive number of requests per second")]
    Rate,
    #[error("there are no requests to send")]
    NoRequests,
    #[error("the engine could not start: {0}")]
    Start(String),
}

impl LoadSpec {
    /// Checks the bounds the engine keeps: loopback only unless allowed, bounded count and time.
    pub fn validate(&self) -> Result<(), SpecError> {
        if !self.address.ip().is_loopback() && !self.allow_remote {
            return Err(SpecError::NotLoopback(self.address));
        }
        if self.connections == 0 || self.connections > MAX_CONNECTIONS {
            return Err(SpecError::Connections(self.connections));
        }
        if self.warmup + self.duration > MAX_DURATION || self.duration.is_zero() {
            return Err(SpecError::Duration);
        }
        if self
            .rate
            .is_some_and(|rate| !(rate.is_finite() && rate > 0.0))
        {
            return Err(SpecError::Rate);
        }
        if self.requests.is_empty() {
            return Err(SpecError::NoRequests);
        }
        Ok(())
    }
}

/// Shared between the engine threads and whoever watches the run.
#[derive(Debug, Default)]
pub struct LiveCounters {
    /// Responses received so far (all statuses), for a live request rate.
    pub responses: AtomicU64,
    /// Set to stop the run early (Ctrl-C); connections finish their request in flight and end.
    pub stop: AtomicBool,
}

/// Runs the load on dedicated threads and blocks until it is over. Call it from a blocking
/// context (`spawn_blocking` or a plain thread).
pub fn run(spec: &LoadSpec, live: &Arc<LiveCounters>) -> Result<LoadOutcome, SpecError> {
    spec.validate()?;
    let threads = spec.threads.clamp(1, spec.connections);
    // Everyone meets at the barrier once connected, then shares one start time.
    // Every request on the wire as it goes, serialized once for all threads before the clock.
    let requests = spec
        .requests
        .iter()
        .map(|planned| {
            Ok(WireRequest {
                request: GetRequest::new(spec.address, &planned.path)?,
                expected: planned.expected.clone(),
            })
        })
        .collect::<Result<Vec<_>, String>>()
        .map_err(SpecError::Start)?;
    let requests = Arc::new(requests);
    let barrier = Arc::new(Barrier::new(threads + 1));
    let start: Arc<OnceLock<Instant>> = Arc::new(OnceLock::new());

    let mut handles = Vec::with_capacity(threads);
    for thread_index in 0..threads {
        // Connections are dealt round robin, so thread loads differ by at most one.
        let connection_indexes: Vec<usize> =
            (thread_index..spec.connections).step_by(threads).collect();
        let context = ThreadContext {
            spec: spec.clone(),
            live: Arc::clone(live),
            barrier: Arc::clone(&barrier),
            start: Arc::clone(&start),
            connection_indexes,
            requests: Arc::clone(&requests),
        };
        let handle = std::thread::Builder::new()
            .name(format!("load-{thread_index}"))
            .spawn(move || context.run())
            .map_err(|error| SpecError::Start(error.to_string()))?;
        handles.push(handle);
    }

    barrier.wait();
    // The threads read the start only after this barrier, so setting it here is seen by all.
    let _ = start.set(Instant::now());
    barrier.wait();

    let mut outcome: Option<Tally> = None;
    for handle in handles {
        let tally = handle
            .join()
            .map_err(|_| SpecError::Start("an engine thread panicked".into()))??;
        match &mut outcome {
            None => outcome = Some(tally),
            Some(total) => total.merge(tally),
        }
    }
    let tally = outcome.ok_or_else(|| SpecError::Start("no engine thread ran".into()))?;
    let started = start.get().copied().unwrap_or_else(Instant::now);
    let window_start = started + spec.warmup;
    let planned_end = window_start + spec.duration;
    // A stopped run measured less than planned.
    let measured = tally.last_completion.map_or(Duration::ZERO, |last| {
        last.min(planned_end)
            .saturating_duration_since(window_start)
    });
    let measured = if live.stop.load(Ordering::Relaxed) {
        measured
    } else {
        spec.duration
    };
    // A mark set after the last answer still counts: nothing was waiting then.
    let mut after_mark = tally.after_mark;
    after_mark.mark = after_mark.mark.or(spec.mark.as_deref().and_then(Mark::get));
    let mut outcome = tally.into_outcome(measured, spec.rate.is_some(), window_start);
    outcome.after_mark = after_mark.mark.is_some().then_some(after_mark);
    Ok(outcome)
}

struct ThreadContext {
    spec: LoadSpec,
    live: Arc<LiveCounters>,
    barrier: Arc<Barrier>,
    start: Arc<OnceLock<Instant>>,
    connection_indexes: Vec<usize>,
    requests: Arc<Vec<WireRequest>>,
}

/// A planned request as it goes on the wire, with the body a 2xx answer must carry.
struct WireRequest {
    request: GetRequest,
    expected: Option<Bytes>,
}

impl ThreadContext {
    fn run(self) -> Result<Tally, SpecError> {
        let pinned = match &self.spec.cpus {
            Some(cpus) => cpus.pin_current_thread(),
            None => Ok(()),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        // Connection tasks live on this thread's local set, from the first connect on.
        let local = tokio::task::LocalSet::new();
        // Meet the others even on failure, so that nobody waits forever at the barrier.
        let prepared = match (pinned, runtime) {
            (Ok(()), Ok(runtime)) => {
                let links = local.block_on(&runtime, self.connect_all());
                Ok((runtime, links))
            }
            (Err(error), _) => Err(SpecError::Start(format!("pinning failed: {error}"))),
            (_, Err(error)) => Err(SpecError::Start(error.to_string())),
        };
        self.barrier.wait();
        self.barrier.wait();
        let (runtime, links) = prepared?;
        let start = self.start.get().copied().unwrap_or_else(Instant::now);
        let clock = Clock {
            window_start: start + self.spec.warmup,
            end: start + self.spec.warmup + self.spec.duration,
        };
        let series = SeriesTally::new(clock.window_start, self.spec.duration);
        let tally = Rc::new(RefCell::new(Tally::new(self.spec.rate.is_some(), series)));
        for (index, link) in self.connection_indexes.iter().zip(links) {
            let worker = ConnectionWorker {
                index: *index,
                spec: self.spec.clone(),
                live: Arc::clone(&self.live),
                tally: Rc::clone(&tally),
                requests: Arc::clone(&self.requests),
                clock,
                start,
                rng: SplitMix64::new(self.spec.seed ^ (*index as u64).wrapping_mul(0x9e37_79b9)),
            };
            local.spawn_local(worker.run(link));
        }
        let cpu_before = thread_cpu_time();
        runtime.block_on(local);
        let cpu_used = thread_cpu_time().saturating_sub(cpu_before);
        tally.borrow_mut().engine_cpu += cpu_used;
        drop(runtime);
        Rc::try_unwrap(tally)
            .map(RefCell::into_inner)
            .map_err(|_| SpecError::Start("a connection outlived the run".into()))
    }

    /// Opens this thread's connections before the clock starts, so that connecting is not
    /// measured; one that fails here is retried in the loop and counted there.
    async fn connect_all(&self) -> Vec<Option<Connection>> {
        let attempts = self
            .connection_indexes
            .iter()
            .map(|_| Connection::open(self.spec.address, self.spec.timeout));
        futures_util::future::join_all(attempts)
            .await
            .into_iter()
            .map(Result::ok)
            .collect()
    }
}

#[derive(Debug, Clone, Copy)]
struct Clock {
    window_start: Instant,
    end: Instant,
}

impl Clock {
    fn in_window(&self, at: Instant) -> bool {
        at >= self.window_start && at <= self.end
    }
}

struct ConnectionWorker {
    index: usize,
    spec: LoadSpec,
    live: Arc<LiveCounters>,
    tally: Rc<RefCell<Tally>>,
    requests: Arc<Vec<WireRequest>>,
    clock: Clock,
    start: Instant,
    rng: SplitMix64,
}

impl ConnectionWorker {
    async fn run(mut self, first: Option<Connection>) {
        let mut link = first;
        // Open loop: this connection's share of the rate, staggered so connections do not send
        // in lockstep.
        let schedule = self.spec.rate.map(|rate| {
            let connections = self.spec.connections as f64;
            let interval_nanos = (connections / rate * 1e9) as u64;
            let offset = Duration::from_secs_f64(self.index as f64 / rate);
            (interval_nanos, offset)
        });
        let mut sent_count: u64 = 0;
        let mut responses: u64 = 0;
        // When this connection's previous exchange ended (successfully or not); it was ready
        // before the clock started.
        let mut free_since = self.start;
        // One timer for the connection's life, moved forward for each request: extending a
        // registered timer is a compare-and-swap, where a fresh timeout per request would go
        // through the timer wheel every time.
        let timer = tokio::time::sleep(self.spec.timeout);
        tokio::pin!(timer);
        loop {
            if self.live.stop.load(Ordering::Relaxed) {
                break;
            }
            let intended = match schedule {
                Some((interval_nanos, offset)) => {
                    let due = self.start
                        + offset
                        + Duration::from_nanos(interval_nanos.saturating_mul(sent_count));
                    if due > self.clock.end {
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                    Some(due)
                }
                None => None,
            };
            sent_count += 1;

            let current = match link.take() {
                Some(current) => current,
                None => match Connection::open(self.spec.address, self.spec.timeout).await {
                    Ok(fresh) => fresh,
                    Err(kind) => {
                        let failed = Instant::now();
                        self.count_error(kind.into(), failed);
                        if failed >= self.clock.end {
                            break;
                        }
                        tokio::time::sleep(RECONNECT_PAUSE).await;
                        continue;
                    }
                },
            };
            let mut current = current;
            let WireRequest { request, expected } =
                &self.requests[self.rng.below(self.requests.len())];
            let check = responses.is_multiple_of(self.spec.check_every.max(1));
            let expected = expected.as_ref().filter(|_| check);
            let body_use = match expected {
                Some(expected) => BodyUse::Compare(expected),
                None => BodyUse::Count,
            };

            let sent = Instant::now();
            if sent >= self.clock.end {
                break;
            }
            timer.as_mut().reset((sent + self.spec.timeout).into());
            let result = {
                let exchange = std::pin::pin!(current.exchange(request, body_use));
                match futures_util::future::select(exchange, timer.as_mut()).await {
                    Either::Left((result, _)) => Ok(result),
                    Either::Right(((), _)) => Err(()),
                }
            };
            let done = Instant::now();
            match result {
                Ok(Ok(answer)) => {
                    responses += 1;
                    // The shared counter is for the progress display: every 64th answer is
                    // enough, and spares the hot path an atomic operation each time.
                    if responses.is_multiple_of(64) {
                        self.live.responses.fetch_add(64, Ordering::Relaxed);
                    }
                    // A connection the server is closing is replaced before the next request.
                    if current.is_reusable() {
                        link = Some(current);
                    }
                    let timing = Timing::of(sent, done, intended, free_since);
                    self.count_response(&answer, expected.is_some(), &timing);
                }
                Ok(Err(error)) => self.count_failure(error.into(), sent, done),
                Err(()) => self.count_failure(ErrorKind::Timeout, sent, done),
            }
            free_since = done;
        }
    }

    /// Counts a completed request against the spec's mark, once it is set (an atomic load per
    /// answer, only in runs that have a mark).
    fn note_mark(&self, sent: Instant, done: Instant, ok: bool) {
        let Some(mark) = self.spec.mark.as_deref().and_then(Mark::get) else {
            return;
        };
        let mut tally = self.tally.borrow_mut();
        tally.after_mark.mark = Some(mark);
        tally.after_mark.count(sent, done, ok);
    }

    /// A request that got no usable answer.
    fn count_failure(&self, kind: ErrorKind, sent: Instant, done: Instant) {
        self.note_mark(sent, done, false);
        self.count_error(kind, done);
    }

    fn count_error(&self, kind: ErrorKind, at: Instant) {
        if self.clock.in_window(at) {
            let mut tally = self.tally.borrow_mut();
            *tally.errors.entry(kind).or_insert(0) += 1;
            tally.series.count(at, Outcome::Failed(kind), None);
        }
    }

    fn count_response(&self, answer: &http1::Answer, body_checked: bool, timing: &Timing) {
        let outcome = Outcome::of(answer, body_checked);
        self.note_mark(timing.sent, timing.done, matches!(outcome, Outcome::Ok));
        let Timing {
            done,
            latency,
            uncorrected,
            ..
        } = *timing;
        let mut tally = self.tally.borrow_mut();
        tally.total_responses += 1;
        tally.last_completion = Some(tally.last_completion.map_or(done, |last| last.max(done)));
        if !self.clock.in_window(done) {
            return;
        }
        tally.responses += 1;
        tally.body_bytes += answer.body_length;
        let latency_micros = micros(latency);
        tally.latency.saturating_record(latency_micros);
        if let (Some(histogram), Some(uncorrected)) = (&mut tally.uncorrected, uncorrected) {
            histogram.saturating_record(micros(uncorrected));
        }
        if body_checked {
            tally.checked_bodies += 1;
        }
        match outcome {
            Outcome::Ok => tally.ok += 1,
            Outcome::Unavailable(kind) | Outcome::OtherStatus(kind) | Outcome::Failed(kind) => {
                *tally.errors.entry(kind).or_insert(0) += 1;
            }
        }
        tally.series.count(done, outcome, Some(latency_micros));
    }
}

/// When an answered request was sent and answered, and its latency.
#[derive(Debug, Clone, Copy)]
struct Timing {
    sent: Instant,
    done: Instant,
    latency: Duration,
    /// Open loop only: from the actual send time.
    uncorrected: Option<Duration>,
}

impl Timing {
    /// Open loop: a request that found its connection still busy when it was `intended` waited
    /// for the server, and that wait counts (coordinated omission corrected). One that found it
    /// free waited only for the engine's timer (millisecond granularity), which is not the
    /// server's doing.
    fn of(sent: Instant, done: Instant, intended: Option<Instant>, free_since: Instant) -> Timing {
        let start = match intended {
            Some(due) if free_since > due => due,
            _ => sent,
        };
        Timing {
            sent,
            done,
            latency: done.saturating_duration_since(start),
            uncorrected: intended.map(|_| done.saturating_duration_since(sent)),
        }
    }
}

/// CPU time of the calling thread so far (from the scheduler's own accounting, in nanoseconds).
fn thread_cpu_time() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// A histogram with the engine's bounds.
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts, so this cannot fail; a plain
    // auto-resizing histogram is the fallback all the same.
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_MICROS, HISTOGRAM_SIGNIFICANT_DIGITS)
        .or_else(|_| Histogram::new(HISTOGRAM_SIGNIFICANT_DIGITS))
        .expect("three significant digits are within hdrhistogram's limits")
}

/// What became of one request, as the series counts it.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Ok,
    /// A 503 (of this kind: with `Retry-After` or without).
    Unavailable(ErrorKind),
    /// Any other non-2xx answer.
    OtherStatus(ErrorKind),
    /// No usable answer: the transport failed, or a 2xx carried the wrong body.
    Failed(ErrorKind),
}

impl Outcome {
    /// What an answer is, its body compared or not.
    fn of(answer: &http1::Answer, body_checked: bool) -> Outcome {
        match answer.status {
            200..=299 if body_checked && !answer.body_matches => Outcome::Failed(ErrorKind::Body),
            200..=299 => Outcome::Ok,
            503 if answer.retry_after => Outcome::Unavailable(ErrorKind::Status(503)),
            503 => Outcome::Unavailable(ErrorKind::UnavailableWithoutRetryAfter),
            status => Outcome::OtherStatus(ErrorKind::Status(status)),
        }
    }
}

/// One interval's counts on one thread.
#[derive(Debug, Clone, Default)]
struct IntervalTally {
    ok: u64,
    unavailable: u64,
    other_status: u64,
    errors: BTreeMap<ErrorKind, u64>,
}

impl IntervalTally {
    fn add(&mut self, other: &IntervalTally) {
        self.ok += other.ok;
        self.unavailable += other.unavailable;
        self.other_status += other.other_status;
        for (kind, count) in &other.errors {
            *self.errors.entry(*kind).or_insert(0) += count;
        }
    }
}

/// A finished interval of one thread: its counts and the non-empty buckets of its latency
/// histogram (bucket value, count), all that is needed to merge it with the other threads'.
#[derive(Debug, Clone)]
struct ClosedInterval {
    index: usize,
    tally: IntervalTally,
    buckets: Vec<(u64, u64)>,
}

/// One thread's series: the interval it is in, recorded in full, and the intervals behind it in
/// their compact form.
struct SeriesTally {
    window_start: Instant,
    interval: Duration,
    /// The intervals of the planned window; an event at its very end counts in the last.
    interval_count: usize,
    current: Option<(usize, IntervalTally)>,
    histogram: Histogram<u64>,
    closed: Vec<ClosedInterval>,
}

impl SeriesTally {
    fn new(window_start: Instant, duration: Duration) -> SeriesTally {
        let interval = series_interval(duration);
        let interval_count = duration.as_nanos().div_ceil(interval.as_nanos()).max(1);
        SeriesTally {
            window_start,
            interval,
            interval_count: usize::try_from(interval_count).unwrap_or(usize::MAX),
            current: None,
            histogram: new_interval_histogram(),
            closed: Vec::new(),
        }
    }

    fn index_of(&self, at: Instant) -> usize {
        let offset = at.saturating_duration_since(self.window_start).as_nanos();
        let index = usize::try_from(offset / self.interval.as_nanos()).unwrap_or(usize::MAX);
        index.min(self.interval_count - 1)
    }

    fn count(&mut self, at: Instant, outcome: Outcome, latency_micros: Option<u64>) {
        let index = self.index_of(at);
        if self
            .current
            .as_ref()
            .is_none_or(|(current, _)| *current != index)
        {
            self.close_current();
            self.current = Some((index, IntervalTally::default()));
        }
        let Some((_, tally)) = self.current.as_mut() else {
            return;
        };
        match outcome {
            Outcome::Ok => tally.ok += 1,
            Outcome::Unavailable(kind) => {
                tally.unavailable += 1;
                *tally.errors.entry(kind).or_insert(0) += 1;
            }
            Outcome::OtherStatus(kind) => {
                tally.other_status += 1;
                *tally.errors.entry(kind).or_insert(0) += 1;
            }
            Outcome::Failed(kind) => *tally.errors.entry(kind).or_insert(0) += 1,
        }
        if let Some(latency) = latency_micros {
            self.histogram.saturating_record(latency);
        }
    }

    /// Keeps the current interval in its compact form and empties the histogram for the next.
    fn close_current(&mut self) {
        let Some((index, tally)) = self.current.take() else {
            return;
        };
        let buckets = self
            .histogram
            .iter_recorded()
            .map(|bucket| (bucket.value_iterated_to(), bucket.count_at_value()))
            .collect();
        self.histogram.reset();
        self.closed.push(ClosedInterval {
            index,
            tally,
            buckets,
        });
    }

    /// The threads' intervals merged into one series of `measured` (the window, or less when the
    /// run was stopped early).
    fn into_series(
        mut self,
        others: Vec<ClosedInterval>,
        measured: Duration,
    ) -> (Series, Vec<Option<Histogram<u64>>>) {
        self.close_current();
        let mut closed = self.closed;
        closed.extend(others);
        let shown = usize::try_from(measured.as_nanos().div_ceil(self.interval.as_nanos()))
            .unwrap_or(usize::MAX)
            .clamp(1, self.interval_count);
        let mut tallies = vec![IntervalTally::default(); shown];
        let mut histograms: Vec<Option<Histogram<u64>>> = vec![None; shown];
        for interval in closed {
            let index = interval.index.min(shown - 1);
            tallies[index].add(&interval.tally);
            if interval.buckets.is_empty() {
                continue;
            }
            let histogram = histograms[index].get_or_insert_with(new_interval_histogram);
            for (value, count) in interval.buckets {
                let _ = histogram.record_n(value, count);
            }
        }
        let intervals = tallies
            .into_iter()
            .zip(&histograms)
            .map(|(tally, histogram)| {
                let quantile = |q: f64| histogram.as_ref().map_or(0, |h| h.value_at_quantile(q));
                IntervalFigures {
                    ok: tally.ok,
                    unavailable: tally.unavailable,
                    other_status: tally.other_status,
                    errors: tally
                        .errors
                        .iter()
                        .map(|(kind, count)| (kind.name(), *count))
                        .collect(),
                    p50_us: quantile(0.5),
                    p99_us: quantile(0.99),
                    max_us: histogram.as_ref().map_or(0, Histogram::max),
                }
            })
            .collect();
        let series = Series {
            interval_ms: u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX),
            intervals,
        };
        (series, histograms)
    }
}

/// The histogram of one interval of one thread: the engine's bounds, two significant digits.
fn new_interval_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_MICROS, INTERVAL_SIGNIFICANT_DIGITS)
        .or_else(|_| Histogram::new(INTERVAL_SIGNIFICANT_DIGITS))
        .expect("two significant digits are within hdrhistogram's limits")
}

/// One thread's counts, merged into the run's at the end.
struct Tally {
    latency: Histogram<u64>,
    uncorrected: Option<Histogram<u64>>,
    ok: u64,
    responses: u64,
    total_responses: u64,
    body_bytes: u64,
    checked_bodies: u64,
    errors: BTreeMap<ErrorKind, u64>,
    last_completion: Option<Instant>,
    engine_cpu: Duration,
    series: SeriesTally,
    /// The other threads' finished intervals, merged in at the end.
    merged_intervals: Vec<ClosedInterval>,
    after_mark: AfterMark,
}

impl Tally {
    fn new(open_loop: bool, series: SeriesTally) -> Tally {
        Tally {
            latency: new_histogram(),
            uncorrected: open_loop.then(new_histogram),
            ok: 0,
            responses: 0,
            total_responses: 0,
            body_bytes: 0,
            checked_bodies: 0,
            errors: BTreeMap::new(),
            last_completion: None,
            engine_cpu: Duration::ZERO,
            series,
            merged_intervals: Vec::new(),
            after_mark: AfterMark::default(),
        }
    }

    fn merge(&mut self, mut other: Tally) {
        other.series.close_current();
        self.merged_intervals.append(&mut other.series.closed);
        self.merged_intervals.append(&mut other.merged_intervals);
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        if let (Some(mine), Some(theirs)) = (&mut self.uncorrected, &other.uncorrected) {
            let _ = mine.add(theirs);
        }
        self.ok += other.ok;
        self.responses += other.responses;
        self.total_responses += other.total_responses;
        self.body_bytes += other.body_bytes;
        self.checked_bodies += other.checked_bodies;
        self.engine_cpu += other.engine_cpu;
        self.after_mark.merge(&other.after_mark);
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_insert(0) += count;
        }
        self.last_completion = match (self.last_completion, other.last_completion) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    fn into_outcome(
        self,
        measured: Duration,
        open_loop: bool,
        window_start: Instant,
    ) -> LoadOutcome {
        let (series, interval_latency) = self.series.into_series(self.merged_intervals, measured);
        LoadOutcome {
            series,
            interval_latency,
            window_start,
            measured,
            ok: self.ok,
            responses: self.responses,
            total_responses: self.total_responses,
            body_bytes: self.body_bytes,
            checked_bodies: self.checked_bodies,
            latency: self.latency,
            uncorrected: if open_loop { self.uncorrected } else { None },
            errors: self.errors,
            engine_cpu: self.engine_cpu,
            after_mark: None,
        }
    }
}

/// SplitMix64: a tiny, fixed generator for picking requests; quality far beyond what choosing
/// among a few hundred requests needs, and the same sequence on every machine.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: usize) -> usize {
        if bound <= 1 {
            return 0;
        }
        // Multiply-shift: unbiased enough for a bound this far below 2^64.
        ((u128::from(self.next_u64()) * bound as u128) >> 64) as usize
    }
}
