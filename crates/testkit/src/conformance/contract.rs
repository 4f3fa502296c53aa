//! The contract's answers that need no database: `/version`, `/fibonacci`, the `/test/*`
//! endpoints and `/openapi.json`, and how a body is compared with the expected one.

use anyhow::Result;
use bakeoff_core::model::{VersionInfo, to_json};
use bakeoff_core::params::Iterations;
use bakeoff_core::workload::{self, FibonacciBody};
use serde_json::Value;

use super::Checker;
use super::exchange::Answer;

/// `fib(n)` as the contract computes it (`fib(0) = fib(1) = 1`).
const FIBONACCI: [(&str, u64); 5] = [("0", 1), ("1", 1), ("2", 2), ("10", 89), ("25", 121_393)];

impl Checker<'_> {
    /// Checks that `path` answers `status` with exactly `expected`'s JSON.
    pub(super) async fn expect_body(
        &mut self,
        path: &str,
        status: u16,
        expected: &impl serde::Serialize,
    ) {
        let Some((answer, value)) = self.fetch(path, status).await else {
            return;
        };
        self.compare_body(path, &answer, &value, expected);
    }

    pub(super) fn compare_body(
        &mut self,
        path: &str,
        answer: &Answer,
        value: &Value,
        expected: &impl serde::Serialize,
    ) {
        let expected_bytes = to_json(expected);
        let expected_value: Value = serde_json::from_slice(&expected_bytes).unwrap_or(Value::Null);
        if *value != expected_value {
            let got =
                String::from_utf8_lossy(&answer.body[..answer.body.len().min(400)]).into_owned();
            let want = String::from_utf8_lossy(&expected_bytes[..expected_bytes.len().min(400)])
                .into_owned();
            self.fail(format!(
                "GET {path}: body differs\n      got:      {got}\n      expected: {want}"
            ));
        } else if self.target.exact_bytes && answer.body != expected_bytes {
            self.fail(format!(
                "GET {path}: same JSON value but not the same bytes as core's serialization: {}",
                String::from_utf8_lossy(&answer.body[..answer.body.len().min(400)])
            ));
        }
    }

    pub(super) async fn check_version(&mut self) -> Result<()> {
        for path in ["/version", "/version/"] {
            let Some((answer, value)) = self.fetch(path, 200).await else {
                continue;
            };
            match &self.target.variant {
                Some(variant) => {
                    self.compare_body(path, &answer, &value, &VersionInfo::of(variant))
                }
                None => {
                    let variant = value["variant"].as_str().unwrap_or_default().to_string();
                    self.compare_body(path, &answer, &value, &VersionInfo::of(&variant));
                }
            }
        }
        self.expect_statements("/version", 0..=0).await
    }

    pub(super) async fn check_fibonacci(&mut self) -> Result<()> {
        for (n, result) in FIBONACCI {
            self.expect_body(&format!("/fibonacci/{n}"), 200, &FibonacciBody { result })
                .await;
        }
        self.expect_body("/fibonacci/10/", 200, &FibonacciBody { result: 89 })
            .await;
        self.expect_statements("/fibonacci/10", 0..=0).await
    }

    pub(super) async fn check_test_endpoints(&mut self) -> Result<()> {
        if let Some((_, value)) = self.fetch("/test/calibrate", 200).await {
            self.expect_field(
                &value,
                "/test/calibrate",
                "message",
                Value::from("Duration of one iteration"),
            );
            self.expect_positive(&value, "/test/calibrate", 0.0);
        }
        let two = Iterations::parse("2").map_err(|error| anyhow::anyhow!("{error}"))?;
        let checksum = workload::run_iterations(two).checksum;
        for path in [
            "/test/sync-cpubound/2",
            "/test/offload-cpubound/2",
            "/test/offload-cpubound/2/",
        ] {
            if let Some((_, value)) = self.fetch(path, 200).await {
                self.expect_field(
                    &value,
                    path,
                    "message",
                    Value::from("Duration of 2 iterations"),
                );
                self.expect_field(&value, path, "checksum", Value::from(checksum));
                self.expect_positive(&value, path, 0.0);
            }
        }
        for (path, millis) in [
            ("/test/async-iobound/50", 50u64),
            ("/test/blocking-iobound/20/", 20),
        ] {
            if let Some((_, value)) = self.fetch(path, 200).await {
                self.expect_field(
                    &value,
                    path,
                    "message",
                    Value::from(format!("Waited {millis} ms")),
                );
                self.expect_positive(&value, path, millis as f64 / 1000.0);
            }
        }
        if let Some((_, value)) = self.fetch("/test/resmon", 200).await {
            if let Some(variant) = self.target.variant.clone() {
                self.expect_field(&value, "/test/resmon", "variant", Value::from(variant));
            }
            if let Some(workers) = self.target.workers {
                self.expect_field(&value, "/test/resmon", "workers", Value::from(workers));
            }
            if value["threads"].as_i64().unwrap_or(0) < 1
                || value["rss_bytes"].as_u64().unwrap_or(0) == 0
            {
                self.fail(format!("GET /test/resmon: implausible snapshot {value}"));
            }
        }
        Ok(())
    }

    pub(super) fn expect_field(&mut self, value: &Value, path: &str, field: &str, expected: Value) {
        if value[field] != expected {
            self.fail(format!(
                "GET {path}: {field} is {} (expected {expected})",
                value[field]
            ));
        }
    }

    pub(super) fn expect_positive(&mut self, value: &Value, path: &str, at_least: f64) {
        let result = value["result"].as_f64().unwrap_or(-1.0);
        // A timer may round a wait down by a hair; a millisecond of slack.
        if result <= 0.0 || result + 0.001 < at_least {
            self.fail(format!(
                "GET {path}: result {result} (expected at least {at_least} s)"
            ));
        }
    }

    pub(super) async fn check_openapi_document(&mut self) -> Result<()> {
        let Some((answer, value)) = self.fetch("/openapi.json", 200).await else {
            return Ok(());
        };
        // Bakeoff's own variants serve core's generated document itself: the same bytes. A foreign
        // server may serialize it differently but must serve the same document.
        if &value != self.openapi.document() {
            self.fail("GET /openapi.json: not the contract's document".to_string());
        } else if self.target.exact_bytes
            && answer.body != bakeoff_core::openapi::OPENAPI_JSON.as_bytes()
        {
            self.fail(
                "GET /openapi.json: not byte for byte the document core generates".to_string(),
            );
        }
        Ok(())
    }
}
