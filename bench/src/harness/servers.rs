//! The servers under test: a bakeoff variant the harness starts from its workspace binary, or a
//! target already running at a URL. Later kinds (peers) are added here, once, and every command
//! that drives the harness measures them.

use std::fmt;
use std::net::SocketAddr;
use std::sync::LazyLock;

use clap::ValueEnum;
use clap::builder::PossibleValue;

use crate::results::server::{ServerKind, TargetConformance};
pub use crate::results::vocabulary::PathStyle;
use crate::results::vocabulary::{Peer, Variant};

impl Variant {
    /// Every variant, in the order runs and reports show them.
    pub fn all() -> &'static [Variant] {
        Variant::value_variants()
    }

    /// The package and binary name.
    pub fn name(self) -> String {
        crate::names::name_of(&self)
    }

    /// Whether a request checks a connection out of a pool (and so whether a connection-check
    /// policy applies to it). Every variant answers, so that a new one must.
    pub fn checks_out_connections(self) -> bool {
        match self {
            // Shares pipelined connections instead.
            Variant::AxumTokioPostgres => false,
            Variant::ActixDeadpool | Variant::WarpDieselAsync | Variant::ThreadedBlocking => true,
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.name())
    }
}

/// What `--variants` takes: variant names, or `none` to run only `--target` servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VariantChoice {
    Variant(Variant),
    None,
}

impl ValueEnum for VariantChoice {
    fn value_variants<'a>() -> &'a [Self] {
        // Every variant, from `Variant` itself, then `none`.
        static CHOICES: LazyLock<Vec<VariantChoice>> = LazyLock::new(|| {
            Variant::value_variants()
                .iter()
                .copied()
                .map(VariantChoice::Variant)
                .chain([VariantChoice::None])
                .collect()
        });
        &CHOICES
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        match self {
            VariantChoice::Variant(variant) => variant.to_possible_value(),
            VariantChoice::None => {
                Some(PossibleValue::new("none").help("no variant: only the --target servers"))
            }
        }
    }
}

/// Resolves `--variants`: empty means every variant, `none` alone means none.
pub fn chosen_variants(choices: &[VariantChoice]) -> Result<Vec<Variant>, String> {
    if choices.is_empty() {
        return Ok(Variant::all().to_vec());
    }
    if choices.contains(&VariantChoice::None) {
        if choices.len() > 1 {
            return Err("--variants none cannot be combined with variant names".into());
        }
        return Ok(Vec::new());
    }
    let mut variants: Vec<Variant> = choices
        .iter()
        .filter_map(|choice| match choice {
            VariantChoice::Variant(variant) => Some(*variant),
            VariantChoice::None => None,
        })
        .collect();
    variants.sort();
    variants.dedup();
    Ok(variants)
}

/// `--target-paths`: whether a target's paths are the contract's or end with a slash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetPaths {
    /// The contract's paths, unless `/version` redirects (307 or 308) to `/version/`.
    #[default]
    Detect,
    /// The contract's paths (`/types`).
    Bare,
    /// A slash after every path (`/types/`, `/contacts/?limit=5`), as the first study's
    /// FastAPI routes are declared.
    Slash,
}

/// `--target NAME=URL[,DATABASE_URL]`: a server the harness does not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    pub name: String,
    /// `http://HOST:PORT`, without a trailing slash.
    pub url: String,
    /// The database it serves, when it is not the run's.
    pub database_url: Option<String>,
    /// Whether it is measured despite deviations (`--lenient`).
    pub conformance: TargetConformance,
    /// How its paths are written (`--target-paths`).
    pub paths: TargetPaths,
}

impl TargetSpec {
    pub fn parse(text: &str) -> Result<TargetSpec, String> {
        let (name, rest) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?} is not NAME=URL[,DATABASE_URL]"))?;
        let (url, database_url) = match rest.split_once(',') {
            Some((url, database)) => (url, Some(database.to_string())),
            None => (rest, None),
        };
        let name = name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!(
                "{name:?}: a target name is letters, digits, '-', '_' or '.'"
            ));
        }
        let parsed = url::Url::parse(url).map_err(|error| format!("{url:?}: {error}"))?;
        if parsed.scheme() != "http" || parsed.host().is_none() {
            return Err(format!("{url:?}: a target URL is http://HOST:PORT"));
        }
        Ok(TargetSpec {
            name: name.to_string(),
            url: url.trim_end_matches('/').to_string(),
            database_url,
            conformance: TargetConformance::default(),
            paths: TargetPaths::default(),
        })
    }

    /// The socket address of the URL's host and port.
    pub fn address(&self) -> anyhow::Result<SocketAddr> {
        url_address(&self.url)
    }
}

/// The socket address of an `http://` URL's host and port (port 80 when none is given).
pub fn url_address(url: &str) -> anyhow::Result<SocketAddr> {
    use anyhow::Context;
    let parsed = url::Url::parse(url).with_context(|| format!("{url:?} is not a URL"))?;
    parsed
        .socket_addrs(|| Some(80))
        .with_context(|| format!("resolving {url}"))?
        .into_iter()
        .next()
        .with_context(|| format!("{url} resolves to no address"))
}

impl fmt::Display for ServerKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            ServerKind::Variant => "variant",
            ServerKind::Target => "target",
            ServerKind::Peer => "peer",
        })
    }
}

/// One server under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerSpec {
    Variant(Variant),
    Peer(Peer),
    Target(TargetSpec),
}

impl ServerSpec {
    pub fn name(&self) -> String {
        match self {
            ServerSpec::Variant(variant) => variant.name(),
            ServerSpec::Peer(peer) => peer.name(),
            ServerSpec::Target(target) => target.name.clone(),
        }
    }

    pub fn kind(&self) -> ServerKind {
        match self {
            ServerSpec::Variant(_) => ServerKind::Variant,
            ServerSpec::Peer(_) => ServerKind::Peer,
            ServerSpec::Target(_) => ServerKind::Target,
        }
    }

    /// The load it must serve before its figures count, when its runtime needs more than a run's
    /// warm-up gives (the JVM's JIT); zero otherwise.
    pub fn minimum_warmup(&self) -> std::time::Duration {
        match self {
            ServerSpec::Peer(peer) => peer.minimum_warmup(),
            ServerSpec::Variant(_) | ServerSpec::Target(_) => std::time::Duration::ZERO,
        }
    }
}

/// The variants, then the peers, then the targets, as one list.
pub fn servers(variants: &[Variant], peers: &[Peer], targets: &[TargetSpec]) -> Vec<ServerSpec> {
    variants
        .iter()
        .copied()
        .map(ServerSpec::Variant)
        .chain(peers.iter().copied().map(ServerSpec::Peer))
        .chain(targets.iter().cloned().map(ServerSpec::Target))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn variant_names_are_their_binaries() {
        let names: Vec<String> = Variant::all().iter().map(|v| v.name()).collect();
        assert_eq!(
            names,
            [
                "axum-tokio-postgres",
                "actix-deadpool",
                "warp-diesel-async",
                "threaded-blocking"
            ]
        );
        assert_eq!(
            serde_json::to_string(&Variant::WarpDieselAsync).unwrap(),
            "\"warp-diesel-async\""
        );
    }

    #[test]
    fn variant_choices_resolve() {
        assert_eq!(chosen_variants(&[]).unwrap().len(), 4);
        assert_eq!(chosen_variants(&[VariantChoice::None]).unwrap(), []);
        assert!(
            chosen_variants(&[
                VariantChoice::None,
                VariantChoice::Variant(Variant::ActixDeadpool)
            ])
            .is_err()
        );
        assert_eq!(
            chosen_variants(&[
                VariantChoice::Variant(Variant::ThreadedBlocking),
                VariantChoice::Variant(Variant::ActixDeadpool),
                VariantChoice::Variant(Variant::ThreadedBlocking),
            ])
            .unwrap(),
            [Variant::ActixDeadpool, Variant::ThreadedBlocking]
        );
    }

    #[test]
    fn targets_parse() {
        let target = TargetSpec::parse("fastapi=http://127.0.0.1:8000/,postgres://u@h/d").unwrap();
        assert_eq!(target.url, "http://127.0.0.1:8000");
        assert_eq!(target.database_url.as_deref(), Some("postgres://u@h/d"));
        assert_eq!(target.address().unwrap(), "127.0.0.1:8000".parse().unwrap());
        assert_eq!(
            TargetSpec::parse("v6=http://[::1]:9000")
                .unwrap()
                .address()
                .unwrap(),
            "[::1]:9000".parse().unwrap()
        );
        assert_eq!(
            url_address("http://127.0.0.1").unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
        assert_eq!(target.conformance, TargetConformance::Strict);
        assert_eq!(target.paths, TargetPaths::Detect);
        assert!(TargetSpec::parse("no-url").is_err());
        assert!(TargetSpec::parse("x=https://127.0.0.1:1").is_err());
        assert!(TargetSpec::parse("bad name=http://127.0.0.1:1").is_err());
    }
}
