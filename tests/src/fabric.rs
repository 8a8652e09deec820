//! The fabric benchmark's report (host side): reads what the `bench` lab
//! scenario printed (`@@metric` lines and `series-*.csv` blobs) and renders
//! a Markdown table and an SVG plot of connected controllers over time.
//! Hand-rolled SVG, no plotting crate.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::lab::GuestRun;

/// A method's samples: (seconds since its start, live I/O controllers).
pub type Series = Vec<(f64, u32)>;

/// What one boot measured for N subsystems.
#[derive(Debug, Clone, Default)]
pub struct FabricResults {
    /// Subsystems.
    pub n: u32,
    /// The per-method cap, seconds.
    pub cap_secs: f64,
    /// `@@metric` name -> value.
    pub metrics: BTreeMap<String, f64>,
    /// Method id -> its samples.
    pub series: BTreeMap<String, Series>,
    /// Checks that failed, with their detail.
    pub failed: Vec<String>,
}

/// Whether a method connects or disconnects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Counted up to N live I/O controllers.
    Connect,
    /// Counted down to none.
    Disconnect,
}

/// A method id's kind and its label in the table and the legend.
pub fn describe(id: &str) -> Option<(Kind, String)> {
    let threads = |p: &str| match p {
        "1" => "1 thread".to_owned(),
        p => format!("{p} threads"),
    };
    Some(match id {
        "connect-all" => (Kind::Connect, "nvme connect-all".into()),
        "stacd-conf" => (Kind::Connect, "stacd from stacd.conf (no stafd)".into()),
        "stafd-stacd" => (Kind::Connect, "stafd + stacd from start".into()),
        "zone-rest" => (
            Kind::Connect,
            "stafd + stacd: the rest zoned at once".into(),
        ),
        "disconnect-all" => (Kind::Disconnect, "nvme disconnect-all".into()),
        "stacd-unconf" => (
            Kind::Disconnect,
            "stacd: stacd.conf lines removed + SIGHUP".into(),
        ),
        "unzone-all" => (
            Kind::Disconnect,
            "stafd + stacd: all unzoned at once".into(),
        ),
        _ => {
            if let Some(p) = id.strip_prefix("raw-connect-") {
                (Kind::Connect, format!("raw connect floor, {}", threads(p)))
            } else if let Some(w) = id.strip_prefix("stacd-conf-w") {
                (
                    Kind::Connect,
                    format!("stacd from stacd.conf, {w} connects in flight"),
                )
            } else if let Some(p) = id.strip_prefix("unzoned-delete-") {
                (
                    Kind::Disconnect,
                    format!("raw delete floor after unzoning all, {}", threads(p)),
                )
            } else if let Some(p) = id.strip_prefix("raw-delete-") {
                (
                    Kind::Disconnect,
                    format!("raw delete floor, {}", threads(p)),
                )
            } else {
                return None;
            }
        }
    })
}

/// Table order: nvme-cli first, then the raw floors by thread count, then the daemons.
fn order(id: &str) -> (u32, u32) {
    let rank = |p: &str| p.parse().unwrap_or(u32::MAX);
    match id {
        "connect-all" | "disconnect-all" => (0, 0),
        "stacd-conf" | "stacd-unconf" => (2, 0),
        _ if id.starts_with("stacd-conf-w") => (
            2,
            id.trim_start_matches("stacd-conf-w")
                .parse()
                .unwrap_or(u32::MAX),
        ),
        "stafd-stacd" => (3, 0),
        "zone-rest" => (4, 0),
        _ if id.starts_with("unzoned-delete-") => (4, 0),
        "unzone-all" => (4, 1),
        _ => (
            1,
            rank(
                id.trim_start_matches("raw-connect-")
                    .trim_start_matches("raw-delete-"),
            ),
        ),
    }
}

fn parse_series(csv: &str) -> Series {
    csv.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split(',');
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect()
}

/// One method's row.
#[derive(Debug, Clone)]
struct Row {
    id: String,
    kind: Kind,
    label: String,
    secs: f64,
    reached: u32,
    target: u32,
    capped: bool,
}

fn fmt_secs(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.1} s")
    }
}

impl FabricResults {
    /// Reads a finished run of `stas-lab-guest bench`.
    pub fn from_run(n: u32, cap_secs: f64, run: &GuestRun) -> FabricResults {
        let mut metrics = BTreeMap::new();
        for line in run.tagged("metric") {
            let mut w = line.split_whitespace();
            if let (Some(name), Some(Ok(v))) = (w.next(), w.next().map(str::parse::<f64>)) {
                metrics.insert(name.to_owned(), v);
            }
        }
        let mut series = BTreeMap::new();
        for line in run.tagged("blob") {
            let name = line.split(' ').next().unwrap_or_default();
            if let Some(id) = name
                .strip_prefix("series-")
                .and_then(|r| r.strip_suffix(".csv"))
            {
                let csv = run.blob(name).unwrap_or_default();
                series.insert(id.to_owned(), parse_series(&String::from_utf8_lossy(&csv)));
            }
        }
        let failed = run
            .checks()
            .into_iter()
            .filter(|c| c.failed.is_some())
            .map(|c| {
                let detail = run
                    .tagged("detail")
                    .into_iter()
                    .filter_map(|d| d.strip_prefix(&format!("{} ", c.name)).map(str::to_owned))
                    .next_back()
                    .unwrap_or_default();
                format!("{}: {detail}", c.name)
            })
            .collect();
        FabricResults {
            n,
            cap_secs,
            metrics,
            series,
            failed,
        }
    }

    fn metric(&self, name: &str) -> Option<f64> {
        self.metrics.get(name).copied().filter(|v| v.is_finite())
    }

    fn count(&self, name: &str) -> u32 {
        self.metric(name)
            .and_then(|v| format!("{v:.0}").parse().ok())
            .unwrap_or(0)
    }

    fn rows(&self) -> Vec<Row> {
        let mut rows: Vec<Row> = self
            .metrics
            .keys()
            .filter_map(|k| k.strip_suffix(".secs"))
            .filter_map(|id| {
                let (kind, label) = describe(id)?;
                Some(Row {
                    id: id.to_owned(),
                    kind,
                    label,
                    secs: self.metric(&format!("{id}.secs"))?,
                    reached: self.count(&format!("{id}.reached")),
                    target: self.count(&format!("{id}.target")),
                    capped: self.metric(&format!("{id}.capped")) == Some(1.0),
                })
            })
            .collect();
        rows.sort_by_key(|r| order(&r.id));
        rows
    }

    /// The reference of disconnect ratios: the 8-thread delete floor, else
    /// the fastest delete floor.
    fn delete_floor(rows: &[Row]) -> Option<&Row> {
        let floors = || rows.iter().filter(|r| r.id.starts_with("raw-delete-"));
        floors().find(|r| r.id == "raw-delete-8").or_else(|| {
            floors()
                .filter(|r| !r.capped)
                .min_by(|a, b| a.secs.total_cmp(&b.secs))
        })
    }

    /// The results as a Markdown table (with a heading line).
    pub fn table(&self) -> String {
        let rows = self.rows();
        let connect_ref = rows.iter().find(|r| r.id == "connect-all");
        let delete_ref = Self::delete_floor(&rows);
        let mut s = String::new();
        let n = self.n;
        let _ = writeln!(s, "| method (N = {n}) | time | ratio | note |");
        let _ = writeln!(s, "|---|---:|---:|---|");
        for (kind, heading, reference) in [
            (
                Kind::Connect,
                format!("**connect**: until {n} I/O controllers are live"),
                connect_ref,
            ),
            (
                Kind::Disconnect,
                "**disconnect**: until no I/O controller is left".to_owned(),
                delete_ref,
            ),
        ] {
            let _ = writeln!(s, "| {heading} | | | |");
            for r in rows.iter().filter(|r| r.kind == kind) {
                let at_least = if r.capped { "≥ " } else { "" };
                let time = format!("{at_least}{}", fmt_secs(r.secs));
                let ratio = match reference {
                    Some(f) if f.id == r.id => "1.00 (ref)".to_owned(),
                    Some(f) if f.secs > 0.0 => format!("{at_least}{:.2}", r.secs / f.secs),
                    _ => "?".to_owned(),
                };
                let mut note = Vec::new();
                if r.capped {
                    note.push(match kind {
                        Kind::Connect => {
                            format!(
                                "{}/{} after the {:.0} s cap",
                                r.reached, r.target, self.cap_secs
                            )
                        }
                        // Not k/N: the start may not have had all N.
                        Kind::Disconnect => format!(
                            "{} I/O controllers still there after the {:.0} s cap",
                            r.reached, self.cap_secs
                        ),
                    });
                } else if kind == Kind::Connect && r.reached < r.target {
                    note.push(format!("only {}/{} live", r.reached, r.target));
                } else if kind == Kind::Disconnect && r.reached > 0 {
                    note.push(format!("{} left", r.reached));
                }
                if r.id == "zone-rest" {
                    note.push(format!(
                        "{} linked at once after {} one by one",
                        n.saturating_sub(self.count("zone-rest.from")),
                        self.count("zone-rest.from")
                    ));
                }
                if r.id == "unzone-all" {
                    if let Some(u) = self.metric("unzone-all.unlink-secs") {
                        note.push(format!("the {n} configfs unlinks took {}", fmt_secs(u)));
                    }
                    let floor = rows
                        .iter()
                        .find(|f| f.id.starts_with("unzoned-delete-") && !f.capped);
                    if let Some(f) = floor.filter(|f| f.secs > 0.0) {
                        note.push(format!(
                            "{at_least}{:.2}× the delete floor after unzoning",
                            r.secs / f.secs
                        ));
                    }
                }
                let _ = writeln!(
                    s,
                    "| {} | {time} | {ratio} | {} |",
                    r.label,
                    note.join("; ")
                );
            }
        }
        let _ = writeln!(s, "| **other** | | | |");
        if let Some(t) = self.metric("stacd-sigterm.secs") {
            let killed = self.metric("stacd-sigterm.capped") == Some(1.0);
            let _ = writeln!(
                s,
                "| stacd: SIGTERM right after start (connects queued) → exit | {}{} | | {} controllers left{} |",
                if killed { "≥ " } else { "" },
                fmt_secs(t),
                self.count("stacd-sigterm.left"),
                if killed { "; SIGKILLed at the cap" } else { "" }
            );
        }
        if let (Some(p50), Some(p99)) = (self.metric("zone-one.p50"), self.metric("zone-one.p99")) {
            let _ = writeln!(
                s,
                "| stafd + stacd: zoned one by one, configfs link → I/O controller live | p50 {p50:.0} ms, p99 {p99:.0} ms | | {}/{} changes |",
                self.count("zone-one.changes"),
                self.count("zone-one.of")
            );
        }
        let rss = |d: &str| {
            self.metric(&format!("rss-{d}"))
                .map_or("?".to_owned(), |m| format!("{m:.1} MiB"))
        };
        let _ = writeln!(
            s,
            "| VmRSS with {} connected (stafd + stacd from start) | stafd {}, stacd {} | | stacd alone from stacd.conf: {} |",
            self.count("rss.live"),
            rss("stafd"),
            rss("stacd"),
            rss("stacd-alone")
        );
        if let (Some(user), Some(sys)) = (
            self.metric("cpu-stacd-alone.user"),
            self.metric("cpu-stacd-alone.sys"),
        ) {
            let _ = writeln!(
                s,
                "| CPU of stacd from stacd.conf, start → all {n} live | user {user:.2} s, system {sys:.2} s | | system time is mostly the kernel's connect work done in stacd's threads |"
            );
        }
        for (key, label) in [
            ("raw-connect-1", "raw connect floor, 1 thread"),
            ("raw-connect-8", "raw connect floor, 8 threads"),
        ] {
            if let (Some(user), Some(sys)) = (
                self.metric(&format!("cpu-{key}.user")),
                self.metric(&format!("cpu-{key}.sys")),
            ) {
                let _ = writeln!(
                    s,
                    "| CPU of the {label} (the guest program, its sampler included) | user {user:.2} s, system {sys:.2} s | | |"
                );
            }
        }
        s
    }

    /// The connect methods' series as an SVG plot.
    pub fn svg(&self, title: &str) -> String {
        let lines: Vec<(String, &Series)> = self
            .rows()
            .into_iter()
            .filter(|r| r.kind == Kind::Connect)
            .filter_map(|r| Some((r.label, self.series.get(&r.id)?)))
            .collect();
        plot(title, self.n, &lines)
    }
}

/// A "nice" tick step (1, 2 or 5 times a power of ten) for about `ticks` ticks over `span`.
fn tick_step(span: f64, ticks: f64) -> f64 {
    let raw = (span / ticks).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

/// 0, step, 2 step, ... up to `max`.
fn ticks(max: f64, step: f64) -> impl Iterator<Item = f64> {
    (0u32..100)
        .map(move |k| f64::from(k) * step)
        .take_while(move |v| *v <= max + step * 1e-6)
}

/// A tick label with as many decimals as the step needs.
fn tick_label(v: f64, step: f64) -> String {
    let decimals = (-step.log10().floor()).max(0.0);
    let decimals = if decimals >= 1.0 { 1 } else { 0 } + usize::from(decimals >= 2.0);
    format!("{v:.decimals$}")
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

const COLOURS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#7f7f7f",
];

/// Live controllers over time, one polyline per series, with axes and a legend.
pub fn plot(title: &str, n: u32, lines: &[(String, &Series)]) -> String {
    let (w, h) = (960.0, 540.0);
    let (left, right, top, bottom) = (70.0, 330.0, 40.0, 60.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let t_max = lines
        .iter()
        .flat_map(|(_, s)| s.iter().map(|(t, _)| *t))
        .fold(1.0f64, f64::max);
    let x_step = tick_step(t_max, 8.0);
    let x_max = (t_max / x_step).ceil() * x_step;
    let y_max = f64::from(n.max(1));
    let y_step = tick_step(y_max, 8.0);
    let x = |t: f64| left + t / x_max * pw;
    let y = |v: f64| top + ph - v / y_max * ph;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        left + pw / 2.0,
        esc(title)
    );
    // Grid and ticks.
    for t in ticks(x_max, x_step) {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="#ddd"/><text x="{0:.1}" y="{3:.1}" text-anchor="middle">{4}</text>"##,
            x(t),
            top,
            top + ph,
            top + ph + 16.0,
            tick_label(t, x_step)
        );
    }
    for v_at in ticks(y_max, y_step) {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{1:.1}" x2="{2:.1}" y2="{1:.1}" stroke="#ddd"/><text x="{3:.1}" y="{4:.1}" text-anchor="end">{5}</text>"##,
            left,
            y(v_at),
            left + pw,
            left - 6.0,
            y(v_at) + 4.0,
            tick_label(v_at, y_step)
        );
    }
    // Axes and their labels.
    let _ = writeln!(
        s,
        r#"<path d="M{left} {top} V{} H{}" fill="none" stroke="black"/>"#,
        top + ph,
        left + pw
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">seconds since the method started</text>"#,
        left + pw / 2.0,
        h - 18.0
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(18 {}) rotate(-90)" text-anchor="middle">live I/O controllers</text>"#,
        top + ph / 2.0
    );
    // The series and the legend.
    for (i, (label, series)) in lines.iter().enumerate() {
        let colour = COLOURS.get(i % COLOURS.len()).copied().unwrap_or("black");
        let points: Vec<String> = series
            .iter()
            .map(|(t, c)| format!("{:.1},{:.1}", x(*t), y(f64::from(*c))))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
            points.join(" ")
        );
        let ly = top + 10.0 + 22.0 * i as f64;
        let lx = left + pw + 20.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            lx + 24.0,
            lx + 30.0,
            ly + 4.0,
            esc(label)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results() -> FabricResults {
        let mut r = FabricResults {
            n: 10,
            cap_secs: 180.0,
            ..FabricResults::default()
        };
        for (k, v) in [
            ("connect-all.secs", 2.0),
            ("connect-all.reached", 10.0),
            ("connect-all.target", 10.0),
            ("connect-all.capped", 0.0),
            ("stacd-conf.secs", 180.0),
            ("stacd-conf.reached", 7.0),
            ("stacd-conf.target", 10.0),
            ("stacd-conf.capped", 1.0),
            ("raw-delete-8.secs", 0.5),
            ("raw-delete-8.reached", 0.0),
            ("raw-delete-8.target", 0.0),
            ("raw-delete-8.capped", 0.0),
            ("disconnect-all.secs", 1.0),
            ("zone-one.p50", 40.0),
            ("zone-one.p99", 90.0),
            ("rss-stacd", 6.5),
        ] {
            r.metrics.insert(k.into(), v);
        }
        r.series
            .insert("connect-all".into(), vec![(0.0, 0), (1.0, 5), (2.0, 10)]);
        r
    }

    #[test]
    fn table_has_ratios_and_partial_progress() {
        let t = results().table();
        assert!(
            t.contains("| nvme connect-all | 2.00 s | 1.00 (ref) |"),
            "{t}"
        );
        assert!(
            t.contains("≥ 180.0 s | ≥ 90.00 | 7/10 after the 180 s cap"),
            "{t}"
        );
        assert!(t.contains("| nvme disconnect-all | 1.00 s | 2.00 |"), "{t}");
        assert!(t.contains("p50 40 ms, p99 90 ms"), "{t}");
        assert!(t.contains("stacd 6.5 MiB"), "{t}");
    }

    #[test]
    fn svg_has_a_polyline_per_series_and_a_legend() {
        let svg = results().svg("N = 10 <test>");
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(svg.contains("nvme connect-all"));
        assert!(svg.contains("N = 10 &lt;test&gt;"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn ticks_are_round() {
        assert!((tick_step(180.0, 8.0) - 50.0).abs() < 1e-9);
        assert!((tick_step(400.0, 8.0) - 50.0).abs() < 1e-9);
        assert!((tick_step(7.0, 8.0) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn series_csv_parses() {
        assert_eq!(
            parse_series("t,live,io,dc\n0.1,0,1,0\n0.2,3,3,1\n"),
            vec![(0.1, 0), (0.2, 3)]
        );
    }
}
