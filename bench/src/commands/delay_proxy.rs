//! `bakeoff delay-proxy` (hidden): the delay line as a process of its own, as the harness starts
//! it in front of PostgreSQL for a `--db-latency` level. A process of its own so that its CPUs can
//! be chosen like the engine's and its CPU time read from /proc like a server's. It ends when its
//! standard input closes: the harness holds the other end, so the proxy never outlives the run,
//! however the run ends.

use std::io::Read;
use std::net::{SocketAddr, TcpListener};

use anyhow::{Context, Result};

use crate::delay_line;
use crate::results::setup::RoundTrip;

/// The options of `bakeoff delay-proxy`.
#[derive(Debug, Clone, clap::Args)]
pub struct DelayProxyArgs {
    /// Where to listen (port 0: a free one; the address is printed as `listening on ADDR`).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Where to forward each connection.
    #[arg(long)]
    pub upstream: SocketAddr,
    /// The round trip to add, half each way: 0.5ms, 2ms, 500us (at most 1s).
    #[arg(long)]
    pub round_trip: RoundTrip,
}

/// Serves until standard input reaches its end.
pub async fn delay_proxy(args: DelayProxyArgs) -> Result<()> {
    let listener =
        TcpListener::bind(args.listen).with_context(|| format!("listening on {}", args.listen))?;
    let address = listener.local_addr().context("reading the bound address")?;
    let (upstream, one_way) = (args.upstream, args.round_trip.one_way());
    std::thread::Builder::new()
        .name("delay-line-accept".to_string())
        .spawn(move || delay_line::serve(listener, upstream, one_way))
        .context("starting the delay line")?;
    println!("listening on {address}");
    tokio::task::spawn_blocking(|| {
        let mut sink = [0_u8; 64];
        let mut input = std::io::stdin();
        while matches!(input.read(&mut sink), Ok(count) if count > 0) {}
    })
    .await
    .context("watching standard input")?;
    Ok(())
}
