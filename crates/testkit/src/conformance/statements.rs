//! The SQL budget: statements per request, counted in pg_stat_statements for the server's role.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::Checker;

/// The most statements one request may run.
pub const STATEMENT_BUDGET: i64 = 3;

impl Checker<'_> {
    /// The app role's statement count so far (health-check pings excluded), if counting.
    pub(super) async fn statements_so_far(&self) -> Result<Option<i64>> {
        let Some((admin, role)) = &self.counter else {
            return Ok(None);
        };
        Ok(Some(
            crate::postgres::statements_of_role(admin, role).await?,
        ))
    }

    /// Fetches `path` and checks how many statements it ran: `expected` inclusive range.
    pub(super) async fn expect_statements(
        &mut self,
        path: &str,
        expected: std::ops::RangeInclusive<i64>,
    ) -> Result<()> {
        let Some(before) = self.statements_so_far().await? else {
            return Ok(());
        };
        self.report.checks += 1;
        if self.send(reqwest::Method::GET, path).await.is_none() {
            return Ok(());
        }
        // Statistics are written as each statement ends; allow a moment for the last one.
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(500) {
            let ran = self.statements_so_far().await?.unwrap_or(0) - before;
            if ran >= *expected.start() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // One more look, in case a statement beyond the budget was still being recorded.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let ran = self.statements_so_far().await?.unwrap_or(0) - before;
        if !expected.contains(&ran) {
            self.fail(format!(
                "GET {path}: ran {ran} SQL statements, expected {expected:?}"
            ));
        }
        Ok(())
    }
}
