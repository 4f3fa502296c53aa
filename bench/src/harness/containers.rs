//! The containers of a compose run (`--container-cgroups DIR`, the host's cgroup hierarchy
//! mounted read-only in the benchmark's container): which container a target is, which is the
//! database's and which the load engine's own, each with the limits its cgroup enforces.
//!
//! A target is found by its address: on a user-defined network Docker's DNS answers every
//! container's short id (an alias it always adds) with that container's address, so the
//! container whose id resolves to the target's address is the target. That needs no access to
//! the engine's API, and no name of the compose project.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use crate::cgroups::{ContainerCgroup, Hierarchy, SHORT_ID_LENGTH};
use crate::results::server::ContainerRecord;

/// How long one container's short id may take to resolve.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// The host's containers, as their cgroups show them.
#[derive(Debug, Clone)]
pub struct Containers {
    hierarchy: Hierarchy,
}

impl ContainerRecord {
    pub fn of(cgroup: &ContainerCgroup) -> ContainerRecord {
        ContainerRecord {
            id: cgroup.short_id().to_string(),
            cgroup: cgroup.path(),
            limits: cgroup.limits(),
        }
    }
}

impl Containers {
    /// The hierarchy mounted at `root`; an error when it is not one, so that a wrong mount is
    /// said before anything starts.
    pub fn open(root: &Path) -> Result<Containers> {
        let hierarchy = Hierarchy::open(root).map_err(anyhow::Error::msg)?;
        Ok(Containers { hierarchy })
    }

    /// The container this process runs in: the load engine's.
    pub fn own(&self) -> Option<ContainerCgroup> {
        self.hierarchy.own_container()
    }

    /// The container whose short id resolves to `address`; `None` when none does (a server
    /// outside the containers, or on another network).
    pub async fn at_address(&self, address: IpAddr) -> Option<ContainerCgroup> {
        for container in self.hierarchy.containers() {
            let name = format!("{}:0", &container.id[..SHORT_ID_LENGTH]);
            let lookup = tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host(name)).await;
            if let Ok(Ok(mut addresses)) = lookup
                && addresses.any(|resolved| resolved.ip() == address)
            {
                return Some(container);
            }
        }
        None
    }

    /// The container serving `url`'s host (`postgres://...@postgres:5432/...`,
    /// `http://actix-deadpool:8000`), when it is one.
    pub async fn of_url(&self, url: &str) -> Option<ContainerCgroup> {
        let address = match url::Url::parse(url).ok()?.host()? {
            url::Host::Ipv4(address) => IpAddr::V4(address),
            url::Host::Ipv6(address) => IpAddr::V6(address),
            url::Host::Domain(name) => tokio::net::lookup_host(format!("{name}:0"))
                .await
                .ok()?
                .next()?
                .ip(),
        };
        self.at_address(address).await
    }
}
