//! Medians, ratios and the results table (`target/bench-cluster.md`).

use std::fmt::Write as _;

/// What a row is expected to show.
#[derive(Clone, Copy, Debug)]
pub enum Goal {
    /// erlnode / BEAM at least this.
    RatioAtLeast(f64),
    /// erlnode / BEAM at most this.
    RatioAtMost(f64),
    /// erlnode's figure at most this.
    AtMost(f64),
    /// erlnode's figure at least this.
    AtLeast(f64),
    /// No target: shown for reference.
    None,
}

/// How a figure is printed.
#[derive(Clone, Copy, Debug)]
pub enum Unit {
    PerSec(&'static str),
    Micros,
    /// Microseconds with decimals.
    MicrosF,
    Millis,
    /// Nanoseconds.
    Nanos,
    MiB,
    Bytes,
    /// A count per operation, with decimals.
    Count,
}

impl Unit {
    fn show(self, v: f64) -> String {
        if !v.is_finite() {
            return "—".into();
        }
        match self {
            Unit::PerSec(what) => format!("{} {what}/s", si(v)),
            Unit::Micros => format!("{v:.0} µs"),
            Unit::MicrosF => format!("{v:.1} µs"),
            Unit::Millis => format!("{v:.1} ms"),
            Unit::Nanos => format!("{v:.0} ns"),
            Unit::MiB => format!("{:.1} MiB", v / (1024.0 * 1024.0)),
            Unit::Bytes => format!("{v:.0} B"),
            Unit::Count => format!("{v:.2}"),
        }
    }
}

fn si(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if v >= 1e3 {
        format!("{:.2}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// One line of the table: per-pass samples of both sides.
#[derive(Clone, Debug)]
pub struct Row {
    pub scenario: String,
    pub metric: String,
    pub unit: Unit,
    pub erlnode: Vec<f64>,
    pub beam: Vec<f64>,
    pub goal: Goal,
}

/// The median (NaN when empty).
pub fn median(v: &[f64]) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn range(v: &[f64], unit: Unit) -> String {
    let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if finite.len() < 2 {
        return String::new();
    }
    let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!(" [{}…{}]", strip(unit.show(lo)), strip(unit.show(hi)))
}

/// The number alone (ranges repeat the unit otherwise).
fn strip(s: String) -> String {
    s.split(' ').next().unwrap_or_default().to_string()
}

impl Row {
    pub fn ratio(&self) -> f64 {
        median(&self.erlnode) / median(&self.beam)
    }

    /// `Some(met)` when the row has a target.
    pub fn met(&self) -> Option<bool> {
        let e = median(&self.erlnode);
        let r = self.ratio();
        match self.goal {
            Goal::RatioAtLeast(x) => r.is_finite().then_some(r >= x),
            Goal::RatioAtMost(x) => r.is_finite().then_some(r <= x),
            Goal::AtMost(x) => e.is_finite().then_some(e <= x),
            Goal::AtLeast(x) => e.is_finite().then_some(e >= x),
            Goal::None => None,
        }
    }

    fn goal_text(&self) -> String {
        match self.goal {
            Goal::RatioAtLeast(x) => format!("≥ {x}x"),
            Goal::RatioAtMost(x) => format!("ratio ≤ {x}"),
            Goal::AtMost(x) => format!("≤ {}", self.unit.show(x)),
            Goal::AtLeast(x) => format!("≥ {}", self.unit.show(x)),
            Goal::None => String::new(),
        }
    }
}

/// The whole report as Markdown.
pub fn markdown(title: &str, header: &[String], rows: &[Row], notes: &[String]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# {title}\n");
    for h in header {
        let _ = writeln!(s, "- {h}");
    }
    let _ = writeln!(
        s,
        "\nMedians over passes (erlnode and BEAM interleaved in the same run), [min…max] of the passes; \
         ratio = erlnode / BEAM.\n"
    );
    let _ = writeln!(s, "| scenario | metric | erlnode | BEAM | ratio | target | met |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for r in rows {
        let e = format!("{}{}", r.unit.show(median(&r.erlnode)), range(&r.erlnode, r.unit));
        let b = if r.beam.is_empty() {
            "—".into()
        } else {
            format!("{}{}", r.unit.show(median(&r.beam)), range(&r.beam, r.unit))
        };
        let ratio = r.ratio();
        let ratio = if ratio.is_finite() { format!("{ratio:.2}") } else { "—".into() };
        let met = match r.met() {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        let _ = writeln!(s, "| {} | {} | {e} | {b} | {ratio} | {} | {met} |", r.scenario, r.metric, r.goal_text());
    }
    if !notes.is_empty() {
        let _ = writeln!(s, "\nNotes:\n");
        for n in notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_goals() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        let row = Row {
            scenario: "s".into(),
            metric: "m".into(),
            unit: Unit::PerSec("calls"),
            erlnode: vec![30.0, 31.0, 29.0],
            beam: vec![20.0, 10.0, 21.0],
            goal: Goal::RatioAtLeast(1.5),
        };
        assert_eq!(row.ratio(), 1.5);
        assert_eq!(row.met(), Some(true));
        let slow = Row { goal: Goal::RatioAtLeast(1.6), ..row };
        assert_eq!(slow.met(), Some(false));
    }
}
