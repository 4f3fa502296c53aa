//! What the harness records of every server it drives, whatever the command measures: who it is,
//! what it was started with and what it reported running with, whether it passed verification,
//! how long it took to start and how it stopped. The run's and the study's results embed it.

use crate::results::server::{ServerKind, ServerRecord, Verification};

impl ServerRecord {
    pub fn new(name: String, label: String, kind: ServerKind) -> ServerRecord {
        ServerRecord {
            name,
            label,
            kind,
            configuration: None,
            effective: None,
            verification: Verification::default(),
            skipped: None,
            startup_seconds: None,
            warmup_seconds: None,
            shutdown: None,
            pooler: None,
            notes: Vec::new(),
            latency_check: None,
            path_style: None,
            container: None,
        }
    }

    /// The workers it reported running with.
    pub fn workers(&self) -> Option<usize> {
        self.effective.as_ref().map(|settings| settings.workers)
    }

    /// The name reports show: the label, or the name in files that have none.
    pub fn shown_name(&self) -> &str {
        if self.label.is_empty() {
            &self.name
        } else {
            &self.label
        }
    }

    /// The name in tables and chart legends: marked when it was measured without passing
    /// verification (a lenient target) and when it is a Python peer beside the variants.
    pub fn marked_name(&self) -> String {
        let name = self.shown_name();
        if self.is_unverified() {
            format!("{name} (unverified)")
        } else if self.kind == ServerKind::Peer {
            format!("{name} (peer)")
        } else {
            name.to_string()
        }
    }

    /// Measured without passing verification (a lenient target): its figures are not a
    /// verified server's.
    pub fn is_unverified(&self) -> bool {
        self.verification.ran && !self.verification.passed && self.skipped.is_none()
    }
}
