//! A small SVG of the report: throughput per scenario as bars with their
//! ceilings, and the growth curves (req/s and p99 against connections and
//! instances). Plain SVG text: no fonts or native libraries needed.

use std::fmt::Write;

use crate::{growth::Curves, report::Row};

const WIDTH: f64 = 900.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Bars of req/s (filled) against the ceiling (outlined), one per scenario.
fn bars(out: &mut String, rows: &[Row], top: f64) -> f64 {
    let height = 24.0;
    let label = 260.0;
    let scale = rows
        .iter()
        .map(|r| r.per_second.max(r.ceiling_per_second))
        .fold(1.0, f64::max);
    let span = WIDTH - label - 120.0;
    let _ = writeln!(
        out,
        r#"<text x="10" y="{}" font-size="15" font-weight="bold">req/s by scenario (bar) and its ceiling (outline)</text>"#,
        top + 16.0
    );
    for (i, row) in rows.iter().enumerate() {
        let y = top + 30.0 + i as f64 * (height + 6.0);
        let _ = writeln!(
            out,
            r#"<text x="10" y="{}" font-size="12">{}</text>"#,
            y + 16.0,
            escape(&row.scenario)
        );
        let _ = writeln!(
            out,
            r##"<rect x="{label}" y="{y}" width="{:.1}" height="{height}" fill="none" stroke="#888"/>"##,
            span * row.ceiling_per_second / scale
        );
        let _ = writeln!(
            out,
            r##"<rect x="{label}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#4a7ebb"/>"##,
            y + 4.0,
            span * row.per_second / scale,
            height - 8.0
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{}" font-size="11">{:.0} ({:.0}%)</text>"#,
            label + span * row.per_second.max(row.ceiling_per_second) / scale + 6.0,
            y + 16.0,
            row.per_second,
            row.ratio() * 100.0
        );
    }
    top + 40.0 + rows.len() as f64 * (height + 6.0)
}

/// One line chart: req/s (left axis) and p99 ms (right axis) against x.
fn curve(out: &mut String, title: &str, points: &[(usize, f64, f64)], left: f64, top: f64) {
    let (w, h) = (400.0, 220.0);
    let max_rate = points.iter().map(|p| p.1).fold(1.0, f64::max);
    let max_p99 = points.iter().map(|p| p.2).fold(1.0, f64::max);
    let x_of = |i: usize| left + 40.0 + (w - 80.0) * i as f64 / (points.len().max(2) - 1) as f64;
    let _ = writeln!(
        out,
        r#"<text x="{left}" y="{top}" font-size="14" font-weight="bold">{}</text>"#,
        escape(title)
    );
    let _ = writeln!(
        out,
        r##"<rect x="{}" y="{}" width="{}" height="{h}" fill="none" stroke="#ccc"/>"##,
        left + 40.0,
        top + 10.0,
        w - 80.0
    );
    for (series, color, value_of, max) in [
        ("req/s", "#4a7ebb", 1usize, max_rate),
        ("p99 ms", "#c0504d", 2, max_p99),
    ] {
        let mut path = String::new();
        for (i, p) in points.iter().enumerate() {
            let v = if value_of == 1 { p.1 } else { p.2 };
            let y = top + 10.0 + h - h * v / max;
            let _ = write!(path, "{:.1},{:.1} ", x_of(i), y);
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" font-size="10" fill="{color}">{:.0}</text>"#,
                x_of(i) + 3.0,
                y - 3.0,
                v
            );
        }
        let _ = writeln!(
            out,
            r#"<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>"#
        );
        let legend_y = top + h + 45.0 + if value_of == 1 { 0.0 } else { 14.0 };
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{legend_y}" font-size="11" fill="{color}">{series} (max {:.0})</text>"#,
            left + 40.0,
            max
        );
    }
    for (i, p) in points.iter().enumerate() {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{}" font-size="11" text-anchor="middle">{}</text>"#,
            x_of(i),
            top + h + 25.0,
            p.0
        );
    }
}

pub fn svg(rows: &[Row], curves: Option<&Curves>) -> String {
    let mut body = String::new();
    let mut bottom = bars(&mut body, rows, 10.0);
    if let Some(curves) = curves {
        let by_connections: Vec<_> = curves
            .by_connections
            .iter()
            .map(|p| (p.x, p.per_second, p.p99))
            .collect();
        let by_instances: Vec<_> = curves
            .by_instances
            .iter()
            .map(|p| (p.x, p.per_second, p.p99))
            .collect();
        curve(
            &mut body,
            "catalogue list by connections",
            &by_connections,
            10.0,
            bottom + 20.0,
        );
        curve(
            &mut body,
            "catalogue list by instances",
            &by_instances,
            460.0,
            bottom + 20.0,
        );
        bottom += 320.0;
    }
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{bottom:.0}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
{body}</svg>
"#
    )
}
