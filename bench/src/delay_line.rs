//! A delay line for TCP: every chunk read from one side is written to the other a fixed time
//! after it arrived, whatever else is in flight. It adds latency between the servers and
//! PostgreSQL without limiting pipelined throughput (nothing waits for an answer before reading
//! on), keeps byte order, and passes a close (FIN) or a reset on to the other side.
//!
//! Why not a crate: noxious (the Rust port of Toxiproxy) has had no release since 2021 and pins
//! tokio-util 0.6, and its latency toxic delays each read before reading the next, which limits a
//! pipelined stream to one chunk per delay. tokio's timer has a resolution of one millisecond,
//! too coarse for a 0.5 ms round trip; so each direction of a connection is a reader thread and
//! a writer thread, and the writer sleeps with a timer slack of one microsecond and corrects for
//! its own measured oversleep.
//!
//! [`serve`] runs the line on a listener until the process ends; `bakeoff delay-proxy` runs it as
//! its own process (so that its CPU time can be read and its CPUs chosen).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Bytes a direction holds in flight before it stops reading (the sender then waits on TCP's
/// own flow control): bounds memory however fast one side writes.
pub const BYTES_IN_FLIGHT_PER_DIRECTION: usize = 32 * 1024 * 1024;
const READ_BUFFER: usize = 64 * 1024;
const THREAD_STACK: usize = 256 * 1024;

/// Accepts connections on `listener` for ever; each is joined to a new connection to `upstream`
/// through a delay line of `one_way` in each direction. A connection `upstream` refuses is reset.
pub fn serve(listener: TcpListener, upstream: SocketAddr, one_way: Duration) -> io::Result<()> {
    for client in listener.incoming() {
        let client = match client {
            Ok(client) => client,
            // A connection that failed before it was accepted (reset in the backlog) is the
            // client's problem, not the line's.
            Err(error) if error.kind() == io::ErrorKind::ConnectionAborted => continue,
            Err(error) => return Err(error),
        };
        spawn("delay-line-connect", move || {
            join(client, upstream, one_way);
        })?;
    }
    Ok(())
}

/// Starts [`serve`] on a thread, on a free loopback port; returns the port's address.
pub fn start(upstream: SocketAddr, one_way: Duration) -> io::Result<SocketAddr> {
    let listener =
        TcpListener::bind((upstream.ip(), 0)).or_else(|_| TcpListener::bind(("127.0.0.1", 0)))?;
    let address = listener.local_addr()?;
    spawn("delay-line-accept", move || {
        let _ = serve(listener, upstream, one_way);
    })?;
    Ok(address)
}

fn join(client: TcpStream, upstream: SocketAddr, one_way: Duration) {
    let server = match TcpStream::connect(upstream) {
        Ok(server) => server,
        // As a direct connection would have been: refused, seen by the client as a reset.
        Err(_) => {
            reset(&client);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(client_copy), Ok(server_copy)) = (client.try_clone(), server.try_clone()) else {
        reset(&client);
        reset(&server);
        return;
    };
    let _ = direction(client, server_copy, one_way);
    let _ = direction(server, client_copy, one_way);
}

/// What a reader hands its writer.
enum Event {
    Bytes {
        due: Instant,
        bytes: Vec<u8>,
    },
    /// The sending side closed its half: close ours after the same delay.
    Closed {
        due: Instant,
    },
    /// The sending side reset (or failed): reset the other side too.
    Reset,
}

/// The queue between a direction's reader and writer, with its byte budget.
struct Line {
    state: Mutex<LineState>,
    changed: Condvar,
}

struct LineState {
    events: VecDeque<Event>,
    bytes: usize,
    /// The writer is gone (the receiving side failed): the reader stops.
    writer_gone: bool,
    /// Each side says when it waits on `changed`, so that the other wakes it only then: a
    /// notification is a system call, and most chunks arrive while the writer sleeps towards
    /// an earlier chunk's due time.
    writer_waiting: bool,
    reader_waiting: bool,
}

/// Starts the two threads of one direction, `from` -> `to`.
fn direction(from: TcpStream, to: TcpStream, one_way: Duration) -> io::Result<()> {
    let line = Arc::new(Line {
        state: Mutex::new(LineState {
            events: VecDeque::new(),
            bytes: 0,
            writer_gone: false,
            writer_waiting: false,
            reader_waiting: false,
        }),
        changed: Condvar::new(),
    });
    let reader_line = Arc::clone(&line);
    let from_for_writer = from.try_clone()?;
    spawn("delay-line-read", move || {
        read_side(from, &reader_line, one_way)
    })?;
    spawn("delay-line-write", move || {
        write_side(to, from_for_writer, &line);
    })?;
    Ok(())
}

fn read_side(mut from: TcpStream, line: &Line, one_way: Duration) {
    // One buffer for every read; each chunk keeps only its own bytes (a fresh zeroed 64 KiB per
    // read cost more CPU than the read itself, and held 64 KiB per small message in flight).
    let mut buffer = vec![0_u8; READ_BUFFER];
    loop {
        let event = match from.read(&mut buffer) {
            Ok(0) => Event::Closed {
                due: Instant::now() + one_way,
            },
            Ok(count) => Event::Bytes {
                due: Instant::now() + one_way,
                bytes: buffer[..count].to_vec(),
            },
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => Event::Reset,
        };
        let last = !matches!(event, Event::Bytes { .. });
        let Ok(mut state) = line.state.lock() else {
            return;
        };
        if let Event::Bytes { bytes, .. } = &event {
            state.bytes += bytes.len();
        }
        state.events.push_back(event);
        if state.writer_waiting {
            line.changed.notify_all();
        }
        if last {
            return;
        }
        // Over budget: wait for the writer before reading more (TCP then holds the sender back).
        while state.bytes > BYTES_IN_FLIGHT_PER_DIRECTION && !state.writer_gone {
            state.reader_waiting = true;
            state = match line.changed.wait(state) {
                Ok(state) => state,
                Err(_) => return,
            };
            state.reader_waiting = false;
        }
        if state.writer_gone {
            return;
        }
    }
}

fn write_side(mut to: TcpStream, from: TcpStream, line: &Line) {
    set_fine_timer_slack();
    let mut oversleep = Oversleep::default();
    loop {
        let Some(event) = next_event(line) else {
            return;
        };
        match event {
            Event::Bytes { due, mut bytes } => {
                oversleep.sleep_until(due);
                // Everything else already due goes out in the same write: under load a chunk
                // arrives while the writer sleeps, and one write per wake-up keeps the line's
                // CPU from growing with the chunk rate. Each chunk still leaves at or after its
                // own due time, in order.
                let ending = take_due_bytes(line, &mut bytes);
                if to.write_all(&bytes).is_err() {
                    // The receiving side is gone: the sending side learns it as a reset, as it
                    // would have on a direct connection, and this direction stops.
                    if let Ok(mut state) = line.state.lock() {
                        state.writer_gone = true;
                        line.changed.notify_all();
                    }
                    reset(&from);
                    reset(&to);
                    return;
                }
                if let Some(ending) = ending {
                    end_direction(ending, &mut to, &from, &mut oversleep);
                    return;
                }
            }
            ending => {
                end_direction(ending, &mut to, &from, &mut oversleep);
                return;
            }
        }
    }
}

/// The next event, waiting for one; `None` when the line is unusable.
fn next_event(line: &Line) -> Option<Event> {
    let mut state = line.state.lock().ok()?;
    loop {
        if let Some(event) = state.events.pop_front() {
            if let Event::Bytes { bytes, .. } = &event {
                state.bytes -= bytes.len();
            }
            if state.reader_waiting {
                line.changed.notify_all();
            }
            return Some(event);
        }
        state.writer_waiting = true;
        state = line.changed.wait(state).ok()?;
        state.writer_waiting = false;
    }
}

/// Appends to `outgoing` the bytes of every queued chunk already due, in order; returns a close
/// or reset found right behind them, whose turn it is next.
fn take_due_bytes(line: &Line, outgoing: &mut Vec<u8>) -> Option<Event> {
    let Ok(mut state) = line.state.lock() else {
        return None;
    };
    let now = Instant::now();
    let mut taken = 0;
    let mut ending = None;
    while let Some(event) = state.events.front() {
        match event {
            Event::Bytes { due, .. } if *due <= now => {
                if let Some(Event::Bytes { bytes, .. }) = state.events.pop_front() {
                    taken += bytes.len();
                    outgoing.extend_from_slice(&bytes);
                }
            }
            Event::Bytes { .. } => break,
            Event::Closed { .. } | Event::Reset => {
                ending = state.events.pop_front();
                break;
            }
        }
    }
    state.bytes -= taken;
    if taken > 0 && state.reader_waiting {
        line.changed.notify_all();
    }
    ending
}

/// Passes a close on after its delay, or a reset at once.
fn end_direction(ending: Event, to: &mut TcpStream, from: &TcpStream, oversleep: &mut Oversleep) {
    match ending {
        Event::Closed { due } => {
            oversleep.sleep_until(due);
            let _ = to.shutdown(Shutdown::Write);
        }
        Event::Reset => {
            reset(to);
            reset(from);
        }
        Event::Bytes { .. } => {}
    }
}

/// Makes the socket's last close a reset (linger 0) and wakes every thread blocked on it.
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
    let _ = stream.shutdown(Shutdown::Both);
}

/// A writer's sleep that learns how late the kernel wakes it and wakes that much earlier.
#[derive(Default)]
struct Oversleep {
    /// Average lateness of recent wake-ups, in nanoseconds.
    average_nanos: f64,
}

impl Oversleep {
    /// The most the correction may be: beyond it the machine, not the timer, is late.
    const MOST: f64 = 200_000.0;

    fn sleep_until(&mut self, due: Instant) {
        let now = Instant::now();
        if due <= now {
            return;
        }
        let early = Duration::from_nanos(self.average_nanos as u64);
        let wait = (due - now).saturating_sub(early);
        if wait.is_zero() {
            return;
        }
        let target = now + wait;
        thread::sleep(wait);
        let late = Instant::now().saturating_duration_since(target).as_nanos() as f64;
        self.average_nanos = (self.average_nanos * 0.9 + late * 0.1).min(Self::MOST);
    }
}

/// The kernel's default timer slack (50 µs) would be 10 % of a 0.5 ms round trip.
fn set_fine_timer_slack() {
    let _ = nix::sys::prctl::set_timerslack(1_000);
}

fn spawn(name: &str, work: impl FnOnce() + Send + 'static) -> io::Result<()> {
    thread::Builder::new()
        .name(name.to_string())
        .stack_size(THREAD_STACK)
        .spawn(work)
        .map(|_| ())
}
