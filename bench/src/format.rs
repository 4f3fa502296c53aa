//! Tables and numbers as every report and terminal summary shows them: one table type that
//! renders as Markdown or aligned text, and the few number formats they share.

use std::fmt::Write as _;

/// A plain table that renders as Markdown or as aligned text.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these column headers.
    pub fn new(headers: &[impl AsRef<str>]) -> Table {
        Table {
            headers: headers
                .iter()
                .map(|header| header.as_ref().to_string())
                .collect(),
            rows: Vec::new(),
        }
    }

    pub fn markdown(&self) -> String {
        let mut text = format!("| {} |\n", self.headers.join(" | "));
        let rule: Vec<&str> = self
            .headers
            .iter()
            .enumerate()
            .map(|(index, _)| if index == 0 { "---" } else { "---:" })
            .collect();
        let _ = writeln!(text, "| {} |", rule.join(" | "));
        for row in &self.rows {
            let _ = writeln!(text, "| {} |", row.join(" | "));
        }
        text
    }

    pub fn terminal(&self) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (index, value) in row.iter().enumerate().take(columns) {
                widths[index] = widths[index].max(value.chars().count());
            }
        }
        let line = |values: &[String]| {
            let cells: Vec<String> = values
                .iter()
                .enumerate()
                .map(|(index, value)| {
                    let width = widths.get(index).copied().unwrap_or(0);
                    if index == 0 {
                        format!("{value:<width$}")
                    } else {
                        format!("{value:>width$}")
                    }
                })
                .collect();
            cells.join("  ").trim_end().to_string()
        };
        let mut text = line(&self.headers);
        text.push('\n');
        let total: usize = widths.iter().sum::<usize>() + 2 * columns.saturating_sub(1);
        text.push_str(&"-".repeat(total));
        text.push('\n');
        for row in &self.rows {
            text.push_str(&line(row));
            text.push('\n');
        }
        text
    }
}

/// How the best value of a column is marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Markdown,
    Terminal,
}

impl Style {
    /// `value` marked as the best of its column.
    pub fn best(self, value: String) -> String {
        match self {
            Style::Markdown => format!("**{value}**"),
            Style::Terminal => format!("{value}*"),
        }
    }
}

/// `12345` as `12,345`.
pub fn group_thousands(value: i64) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if value < 0 {
        format!("-{grouped}")
    } else {
        grouped
    }
}

/// `1 min 05 s`, `42.0 s`.
pub fn human_duration(seconds: f64) -> String {
    if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else {
        let whole = seconds.round() as u64;
        format!("{} min {:02} s", whole / 60, whole % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_durations_read_as_people_write_them() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1_000), "1,000");
        assert_eq!(group_thousands(-1_234_567), "-1,234,567");
        assert_eq!(human_duration(42.04), "42.0 s");
        assert_eq!(human_duration(125.0), "2 min 05 s");
    }

    #[test]
    fn tables_render_as_markdown_and_aligned_text() {
        let mut table = Table::new(&["server", "req/s"]);
        table.rows.push(vec!["a".into(), "1,000".into()]);
        table.rows.push(vec!["longer".into(), "7".into()]);
        assert_eq!(
            table.markdown(),
            "| server | req/s |\n| --- | ---: |\n| a | 1,000 |\n| longer | 7 |\n"
        );
        assert_eq!(
            table.terminal(),
            "server  req/s\n-------------\na       1,000\nlonger      7\n"
        );
        assert_eq!(Style::Markdown.best("7".into()), "**7**");
        assert_eq!(Style::Terminal.best("7".into()), "7*");
    }
}
