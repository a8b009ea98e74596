//! The benchmark report: one row per scenario with its ceiling and ratio,
//! printed as a table and written as `bench/report.md`.

use std::{fmt::Write, path::Path};

use crate::load::Report;

/// One measured scenario beside the ceiling it is judged against.
pub struct Row {
    pub scenario: String,
    pub per_second: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    /// Answers that were 5xx or transport failures.
    pub errors: usize,
    pub ceiling: String,
    pub ceiling_per_second: f64,
    /// What the scenario is expected to reach, each judged when it is set.
    pub goals: Vec<Goal>,
    pub note: String,
}

/// One goal of a row, e.g. `≥ 60%` of the ceiling or `p99 ≤ 20 µs`, and
/// whether the run met it.
#[derive(Debug, Clone)]
pub struct Goal {
    pub text: String,
    pub met: bool,
}

impl Row {
    pub fn new(
        scenario: impl Into<String>,
        report: &Report,
        ceiling: impl Into<String>,
        ceiling_per_second: f64,
    ) -> Self {
        Self {
            scenario: scenario.into(),
            per_second: report.per_second(),
            p50: report.millis_at(0.50),
            p95: report.millis_at(0.95),
            p99: report.millis_at(0.99),
            errors: report.server_errors(),
            ceiling: ceiling.into(),
            ceiling_per_second,
            goals: Vec::new(),
            note: String::new(),
        }
    }

    /// A goal on the ratio to the ceiling: at least `ratio` of it.
    pub fn target(self, ratio: f64) -> Self {
        let met = self.ratio() >= ratio;
        self.goal(format!("≥ {:.0}%", ratio * 100.0), met)
    }

    /// Any other goal, judged by the caller.
    pub fn goal(mut self, text: impl Into<String>, met: bool) -> Self {
        self.goals.push(Goal {
            text: text.into(),
            met,
        });
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }

    pub fn ratio(&self) -> f64 {
        if self.ceiling_per_second > 0.0 {
            self.per_second / self.ceiling_per_second
        } else {
            0.0
        }
    }

    fn verdict(&self) -> &'static str {
        if self.goals.is_empty() {
            ""
        } else if self.goals.iter().all(|goal| goal.met) {
            "met"
        } else {
            "missed"
        }
    }
}

const HEADER: [&str; 11] = [
    "scenario",
    "req/s",
    "p50",
    "p95",
    "p99",
    "errors",
    "ceiling",
    "ceiling req/s",
    "ratio",
    "target",
    "",
];

fn cells(row: &Row) -> [String; 11] {
    [
        row.scenario.clone(),
        format!("{:.0}", row.per_second),
        latency(row.p50),
        latency(row.p95),
        latency(row.p99),
        row.errors.to_string(),
        row.ceiling.clone(),
        format!("{:.0}", row.ceiling_per_second),
        format!("{:.0}%", row.ratio() * 100.0),
        row.goals
            .iter()
            .map(|goal| goal.text.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        row.verdict().to_owned(),
    ]
}

/// Milliseconds as a cell: microseconds below one millisecond, so that a
/// policy call's few microseconds do not print as 0.00.
fn latency(millis: f64) -> String {
    if millis < 1.0 {
        format!("{:.1} µs", millis * 1000.0)
    } else {
        format!("{millis:.2} ms")
    }
}

/// The rows as an aligned terminal table.
pub fn table(rows: &[Row]) -> String {
    let all: Vec<[String; 11]> = std::iter::once(HEADER.map(str::to_owned))
        .chain(rows.iter().map(cells))
        .collect();
    let widths: Vec<usize> = (0..HEADER.len())
        .map(|c| all.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &all {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, width))| {
                if c == 0 || c == 6 {
                    format!("{cell:<width$}")
                } else {
                    format!("{cell:>width$}")
                }
            })
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

/// The rows as a markdown table, with the machine and the notes.
pub fn markdown(title: &str, machine: &str, rows: &[Row]) -> String {
    let mut out = format!("# {title}\n\n{machine}\n\n");
    let _ = writeln!(out, "| {} |", HEADER[..10].join(" | "));
    let _ = writeln!(out, "|{}|", ["---"; 10].join("|"));
    for row in rows {
        let mut cells = cells(row);
        if !row.verdict().is_empty() {
            cells[9] = format!("{} ({})", cells[9], row.verdict());
        }
        let _ = writeln!(out, "| {} |", cells[..10].join(" | "));
    }
    let notes: Vec<&Row> = rows.iter().filter(|row| !row.note.is_empty()).collect();
    if !notes.is_empty() {
        out.push_str("\nNotes:\n");
        for row in notes {
            let _ = writeln!(out, "- {}: {}", row.scenario, row.note);
        }
    }
    out
}

/// What machine the figures were taken on.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| format!("{} GiB", kb / 1024 / 1024))
        .unwrap_or_default();
    format!(
        "Taken {} on {cores} cores ({cpu}), {memory}; PostgreSQL, Redis, both server instances and the load generator share the machine.",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    )
}

pub fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text)?;
    Ok(())
}
