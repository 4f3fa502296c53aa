//! `PROCESSES=N`: N copies of a server on one port, the way gunicorn's and uvicorn's worker
//! processes share theirs, the same for every variant.
//!
//! With `PROCESSES` above 1 the process started by hand or by the benchmark becomes a small
//! supervisor ([`supervise`], called from [`crate::startup::startup`] before any framework runs).
//! It resolves `BIND` to a real port first, by binding a socket with `SO_REUSEPORT` that it keeps
//! without listening (so a port 0 is one port for every copy, and nobody else takes it), then
//! starts its own binary N times with that address and a marker variable. Every copy binds the
//! same address with `SO_REUSEPORT` ([`bind_listener`]) and the kernel spreads new connections
//! over their listeners. That is chosen over a parent that binds and hands one socket to forked
//! children: a fork of a process that has started threads (tokio, actix, tiny_http) is unsafe
//! without `unsafe`, which the workspace forbids, and re-executing the binary gives each copy a
//! fresh process with its own pool of `DB_POOL_SIZE` connections, as a worker process has.
//!
//! The supervisor prints `listening on http://ADDR` once every copy has printed its own, forwards
//! SIGTERM and SIGINT to every copy and waits for them: exit 0 if each drained cleanly. A copy
//! that dies while serving is reported on stderr at once and in the exit code
//! ([`EXIT_PROCESS_DIED`]), and is not restarted: a benchmark must see it, not a silently
//! replaced process. Each copy asks the kernel to kill it when the supervisor dies, so that a
//! killed supervisor leaves no copy behind holding the port and its connections.

use std::io::{BufRead, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::num::NonZeroUsize;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::{Config, SHUTDOWN_DEADLINE, announce_listening};

/// The variable the supervisor sets in each copy: `INDEX,SUPERVISOR_PID`. Not part of the
/// contract (`ENV_VARS`): it only tells a copy that it is one.
pub const MEMBER_VARIABLE: &str = "BAKEOFF_PROCESS_GROUP_MEMBER";

/// The supervisor's exit code when a copy died while serving (it was not restarted).
pub use crate::config::EXIT_PROCESS_DIED;

/// How long the supervisor waits for every copy's `listening on` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// What this process is in a group of copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `PROCESSES` is 1: the server alone, listening as it always did.
    Alone,
    /// `PROCESSES` is above 1 and this is the process that was started: it starts the copies.
    Supervisor { processes: NonZeroUsize },
    /// One of the copies the supervisor started.
    Member {
        index: usize,
        processes: NonZeroUsize,
        supervisor: u32,
    },
}

impl Role {
    /// The role from `PROCESSES` and the marker variable.
    pub fn of(config: &Config, marker: Option<&str>) -> Role {
        let processes = config.processes;
        let member = marker.and_then(|text| {
            let (index, supervisor) = text.split_once(',')?;
            Some((index.trim().parse().ok()?, supervisor.trim().parse().ok()?))
        });
        match member {
            Some((index, supervisor)) => Role::Member {
                index,
                processes,
                supervisor,
            },
            None if processes.get() > 1 => Role::Supervisor { processes },
            None => Role::Alone,
        }
    }

    /// How many processes serve together, this one included.
    pub fn processes(self) -> usize {
        match self {
            Role::Alone => 1,
            Role::Supervisor { processes } | Role::Member { processes, .. } => processes.get(),
        }
    }
}

static ROLE: OnceLock<Role> = OnceLock::new();

/// This process's role, as [`crate::startup::startup`] found it ([`Role::Alone`] before).
pub fn role() -> Role {
    ROLE.get().copied().unwrap_or(Role::Alone)
}

/// Records the role; a copy also asks to be killed with its supervisor.
pub(crate) fn enter(role: Role) {
    let _ = ROLE.set(role);
    if let Role::Member { supervisor, .. } = role {
        // The supervisor may have died between starting us and this call: then nobody would
        // send the death signal, so look at the parent as well.
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
        if nix::unistd::getppid().as_raw() != supervisor as i32 {
            eprintln!("error: the supervising process {supervisor} is gone");
            std::process::exit(1);
        }
    }
}

/// The listening socket of a server at `address`, with `SO_REUSEPORT` when this process is one
/// of a group (so that the copies share the port) and without it otherwise (so that a port in
/// use is an error). `backlog` is what the variant's framework used before it was given a
/// socket, so that one process behaves as it always did. The socket is in blocking mode.
pub fn bind_listener(address: SocketAddr, backlog: i32) -> std::io::Result<TcpListener> {
    let share_port = matches!(role(), Role::Member { .. });
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    // What std, tokio and actix set before binding on Unix: a restarted server rebinds at once.
    socket.set_reuse_address(true)?;
    if share_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&address.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// Runs the group: starts the copies, announces the address, forwards signals, waits. Never
/// returns: exits 0 when every copy drained cleanly, [`EXIT_PROCESS_DIED`] when one died while
/// serving, 1 when one could not start or did not drain cleanly.
pub fn supervise(config: &Config, processes: NonZeroUsize) -> ! {
    match run_group(config, processes) {
        Ok(code) => std::process::exit(code),
        Err(message) => {
            eprintln!("error: {message}");
            std::process::exit(1);
        }
    }
}

enum Event {
    Ready,
    Exited(usize, ExitStatus),
    Signal(Signal),
}

fn run_group(config: &Config, processes: NonZeroUsize) -> Result<i32, String> {
    // Bound, never listening: it reserves the port (a port 0 becomes a real one) and receives no
    // connections; the copies' listeners join it in one SO_REUSEPORT group.
    let reservation = reserve(config.bind)
        .map_err(|error| format!("cannot listen on {}: {error}", config.bind))?;
    let address = reservation
        .local_addr()
        .ok()
        .and_then(|address| address.as_socket())
        .ok_or_else(|| format!("cannot read the address bound for {}", config.bind))?;
    let program = std::env::current_exe()
        .map_err(|error| format!("cannot find this program to start its copies: {error}"))?;

    let (events, received) = mpsc::channel();
    watch_signals(events.clone())?;
    let mut members: Vec<Member> = Vec::new();
    for index in 0..processes.get() {
        match start_member(&program, address, index, events.clone()) {
            Ok(member) => members.push(member),
            Err(message) => {
                stop_members(&members, Signal::SIGTERM);
                return Err(message);
            }
        }
    }
    drop(events);

    let mut ready = 0;
    let mut announced = false;
    let mut stopping = false;
    let mut died_while_serving = false;
    let mut unclean = false;
    let mut stop_deadline: Option<Instant> = None;
    let startup_deadline = Instant::now() + STARTUP_TIMEOUT;
    while members.iter().any(|member| member.exit.is_none()) {
        let deadline = stop_deadline.unwrap_or(if announced {
            Instant::now() + Duration::from_secs(3_600)
        } else {
            startup_deadline
        });
        let event = match received.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(event) => event,
            Err(mpsc::RecvTimeoutError::Timeout) if stop_deadline.is_some() => {
                eprintln!(
                    "error: processes still running {} s after the shutdown signal; killing them",
                    SHUTDOWN_DEADLINE.as_secs() + 2
                );
                stop_members(&members, Signal::SIGKILL);
                unclean = true;
                stop_deadline = Some(Instant::now() + Duration::from_secs(5));
                continue;
            }
            Err(mpsc::RecvTimeoutError::Timeout) if !announced => {
                stop_members(&members, Signal::SIGKILL);
                return Err(format!(
                    "{} of {processes} processes printed `listening on` within {} s",
                    ready,
                    STARTUP_TIMEOUT.as_secs()
                ));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        match event {
            Event::Ready => {
                ready += 1;
                if ready == processes.get() && !stopping {
                    announced = true;
                    announce_listening(address);
                }
            }
            Event::Signal(signal) => {
                if !stopping {
                    stopping = true;
                    stop_members(&members, signal);
                    stop_deadline =
                        Some(Instant::now() + SHUTDOWN_DEADLINE + Duration::from_secs(2));
                }
            }
            Event::Exited(index, status) => {
                let Some(member) = members.get_mut(index) else {
                    continue;
                };
                member.exit = Some(status);
                let alive = members.iter().filter(|m| m.exit.is_none()).count();
                if stopping {
                    unclean |= !status.success();
                } else if !announced {
                    stop_members(&members, Signal::SIGTERM);
                    wait_briefly(&received, &mut members);
                    return Err(format!(
                        "process {index} of {processes} (pid {}) exited ({status}) before listening",
                        members.get(index).map_or(0, |m| m.pid)
                    ));
                } else {
                    died_while_serving = true;
                    let pid = members.get(index).map_or(0, |m| m.pid);
                    eprintln!(
                        "error: process {index} of {processes} (pid {pid}) died while serving \
                         ({status}); not restarted, {alive} still serving"
                    );
                }
            }
        }
    }
    drop(reservation);
    Ok(if died_while_serving {
        EXIT_PROCESS_DIED
    } else if unclean || !announced {
        1
    } else {
        0
    })
}

/// A started copy: its pid (for signals) and, once known, how it ended. The `Child` itself lives
/// in the thread that waits for it.
struct Member {
    pid: u32,
    exit: Option<ExitStatus>,
}

fn reserve(address: SocketAddr) -> std::io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&address.into())?;
    Ok(socket)
}

fn start_member(
    program: &std::path::Path,
    address: SocketAddr,
    index: usize,
    events: mpsc::Sender<Event>,
) -> Result<Member, String> {
    let mut child = Command::new(program)
        .env("BIND", address.to_string())
        .env(MEMBER_VARIABLE, format!("{index},{}", std::process::id()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot start process {index}: {error}"))?;
    let pid = child.id();
    let stdout = child.stdout.take();
    let exited = events.clone();
    std::thread::spawn(move || {
        if let Some(stdout) = stdout {
            // The copy's own `listening on` line is ours to read; anything else it prints goes on
            // to our stdout. Read to the end so that it never blocks on a full pipe.
            let mut announced = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !announced && line.starts_with("listening on http://") {
                    announced = true;
                    let _ = events.send(Event::Ready);
                } else {
                    // Not println!: it panics when our own stdout is gone.
                    let _ = writeln!(std::io::stdout().lock(), "{line}");
                }
            }
        }
    });
    std::thread::spawn(move || {
        if let Ok(status) = child.wait() {
            let _ = exited.send(Event::Exited(index, status));
        }
    });
    Ok(Member { pid, exit: None })
}

fn watch_signals(events: mpsc::Sender<Event>) -> Result<(), String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .map_err(|error| format!("cannot install the SIGTERM/SIGINT handler: {error}"))?;
    std::thread::spawn(move || {
        for number in signals.forever() {
            let signal = if number == SIGINT {
                Signal::SIGINT
            } else {
                Signal::SIGTERM
            };
            if events.send(Event::Signal(signal)).is_err() {
                break;
            }
        }
    });
    Ok(())
}

fn stop_members(members: &[Member], signal: Signal) {
    for member in members.iter().filter(|member| member.exit.is_none()) {
        if let Ok(pid) = i32::try_from(member.pid) {
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }
}

/// After a failed start: collect the copies' exits for a moment, then kill what is left.
fn wait_briefly(received: &mpsc::Receiver<Event>, members: &mut [Member]) {
    let deadline = Instant::now() + SHUTDOWN_DEADLINE;
    while members.iter().any(|member| member.exit.is_none()) {
        match received.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Event::Exited(index, status)) => {
                if let Some(member) = members.get_mut(index) {
                    member.exit = Some(status);
                }
            }
            Ok(_) => {}
            Err(_) => {
                stop_members(members, Signal::SIGKILL);
                return;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(processes: usize) -> Config {
        Config::from_lookup(|name| match name {
            "DATABASE_URL" => Some("postgres://u@h/d".into()),
            "PROCESSES" => Some(processes.to_string()),
            _ => None,
        })
        .unwrap()
    }

    #[test]
    fn the_role_follows_processes_and_the_marker() {
        assert_eq!(Role::of(&config(1), None), Role::Alone);
        let two = NonZeroUsize::new(2).unwrap();
        assert_eq!(
            Role::of(&config(2), None),
            Role::Supervisor { processes: two }
        );
        assert_eq!(
            Role::of(&config(2), Some("1,4321")),
            Role::Member {
                index: 1,
                processes: two,
                supervisor: 4321
            }
        );
        assert_eq!(Role::of(&config(2), Some("1,4321")).processes(), 2);
        // A malformed marker is not a membership: the process supervises.
        assert_eq!(
            Role::of(&config(2), Some("x")),
            Role::Supervisor { processes: two }
        );
    }

    #[test]
    fn a_listener_alone_refuses_a_port_in_use() {
        let first = bind_listener("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let taken = first.local_addr().unwrap();
        assert!(bind_listener(taken, 16).is_err());
    }
}
