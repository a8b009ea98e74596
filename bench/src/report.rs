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
    /// What the scenario is expected to reach, as a ratio of the ceiling.
    pub target: Option<f64>,
    pub note: String,
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
            target: None,
            note: String::new(),
        }
    }

    pub fn target(mut self, ratio: f64) -> Self {
        self.target = Some(ratio);
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
        match self.target {
            Some(target) if self.ratio() >= target => "met",
            Some(_) => "missed",
            None => "",
        }
    }
}

const HEADER: [&str; 11] = [
    "scenario",
    "req/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
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
        format!("{:.2}", row.p50),
        format!("{:.2}", row.p95),
        format!("{:.2}", row.p99),
        row.errors.to_string(),
        row.ceiling.clone(),
        format!("{:.0}", row.ceiling_per_second),
        format!("{:.0}%", row.ratio() * 100.0),
        row.target
            .map(|t| format!("≥ {:.0}%", t * 100.0))
            .unwrap_or_default(),
        row.verdict().to_owned(),
    ]
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
