//! The boot report, `/run/netboot/boot.json`: the masked plan, every step
//! with start offset, duration, result and facts, and the outcome. Written
//! once at the end of the boot (tmp + rename); `netboot report` renders it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::escape::escape_controls;
use crate::plan::secret::Redactor;

/// Where the recorder writes the report unless told otherwise.
pub const DEFAULT_REPORT_PATH: &str = "/run/netboot/boot.json";

/// Largest report `netboot report` reads. A boot records one step per
/// login attempt: a day-long `netboot.timeout` against a refusing portal
/// retries every few seconds (backoff capped at 4 s), some 20 000 attempts
/// of about 500 bytes each, ~10 MB. Beyond 16 MiB it is not a report.
pub const MAX_REPORT_LEN: u64 = 16 << 20;

/// `boot.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootReport {
    pub v: u32,
    #[serde(default)]
    pub plan: Value,
    pub steps: Vec<StepReport>,
    /// `ok` or `failed:STEP`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// µs from agent start to the end of the boot.
    pub total_us: u64,
    /// CLOCK_BOOTTIME (µs) at agent start.
    #[serde(default)]
    pub boot_us: u64,
}

/// One step in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    pub step: String,
    /// µs from agent start.
    pub start_us: u64,
    pub duration_us: u64,
    /// `ok`, `error` (or `running` in a report taken mid-boot).
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub facts: Map<String, Value>,
}

/// Reading or writing the report failed; names the path.
#[derive(Debug)]
pub enum ReportError {
    Write {
        path: PathBuf,
        cause: std::io::Error,
    },
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    Invalid {
        path: PathBuf,
        cause: serde_json::Error,
    },
    /// Longer than [`MAX_REPORT_LEN`]: not read further.
    TooLarge { path: PathBuf, cap: u64 },
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportError::Write { path, cause } => {
                write!(f, "cannot write boot report {}: {cause}", path.display())
            }
            ReportError::Read { path, cause } => {
                write!(f, "cannot read boot report {}: {cause}", path.display())
            }
            ReportError::Invalid { path, cause } => {
                write!(
                    f,
                    "{} is not a netboot boot report: {cause}",
                    path.display()
                )
            }
            ReportError::TooLarge { path, cap } => write!(
                f,
                "{} is not a netboot boot report: longer than {cap} bytes",
                path.display()
            ),
        }
    }
}

impl std::error::Error for ReportError {}

/// `812us`, `12.3ms`, `6.612s` (like systemd-analyze).
pub fn fmt_duration(us: u64) -> String {
    if us < 1000 {
        format!("{us}us")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else {
        format!("{:.3}s", us as f64 / 1_000_000.0)
    }
}

impl BootReport {
    /// Serialize with every string passed through `redactor`.
    pub fn to_json(&self, redactor: &Redactor) -> String {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        redactor.redact_value(&mut v);
        let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Write atomically: `PATH.tmp`, fsync, rename over `PATH`. Creates the
    /// parent directory (`/run/netboot`) if needed.
    pub fn write(&self, path: &Path, redactor: &Redactor) -> Result<(), ReportError> {
        let werr = |cause| ReportError::Write {
            path: path.to_path_buf(),
            cause,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(werr)?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut f = std::fs::File::create(&tmp).map_err(werr)?;
        f.write_all(self.to_json(redactor).as_bytes())
            .map_err(werr)?;
        f.sync_all().map_err(werr)?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(werr)
    }

    /// Read and parse a report of at most [`MAX_REPORT_LEN`] bytes.
    pub fn read(path: &Path) -> Result<BootReport, ReportError> {
        let text = crate::bounded::read_file(path, MAX_REPORT_LEN).map_err(|e| match e {
            crate::bounded::BoundedReadError::Io(cause) => ReportError::Read {
                path: path.to_path_buf(),
                cause,
            },
            crate::bounded::BoundedReadError::TooLarge { cap } => ReportError::TooLarge {
                path: path.to_path_buf(),
                cap,
            },
        })?;
        serde_json::from_slice(&text).map_err(|cause| ReportError::Invalid {
            path: path.to_path_buf(),
            cause,
        })
    }

    /// Blame (slowest first) then the chronological table. Every string
    /// comes from the file (and before that from targets, DHCP and the
    /// config server), so each line has its control characters escaped: a
    /// forged `boot.json` cannot add a line of its own.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let failed = self.steps.iter().filter(|s| s.result != "ok").count();
        let _ = writeln!(
            o,
            "boot {} in {} ({} steps, {} not ok)",
            escape_controls(&self.outcome),
            fmt_duration(self.total_us),
            self.steps.len(),
            failed
        );
        if let Some(e) = &self.error {
            let _ = writeln!(o, "error: {}", escape_controls(e));
        }
        let _ = writeln!(o, "\nslowest first:");
        let mut by_dur: Vec<&StepReport> = self.steps.iter().collect();
        by_dur.sort_by(|a, b| {
            b.duration_us
                .cmp(&a.duration_us)
                .then(a.start_us.cmp(&b.start_us))
        });
        for s in by_dur {
            let mark = if s.result == "ok" {
                String::new()
            } else {
                format!("  ({})", escape_controls(&s.result))
            };
            let _ = writeln!(
                o,
                "{:>10} {}{mark}",
                fmt_duration(s.duration_us),
                escape_controls(&s.step)
            );
        }
        let _ = writeln!(o, "\nin order:");
        let _ = writeln!(
            o,
            "{:>11} {:>10}  {:<16} {:<7} details",
            "start", "duration", "step", "result"
        );
        let mut by_start: Vec<&StepReport> = self.steps.iter().collect();
        by_start.sort_by_key(|s| s.start_us);
        for s in by_start {
            let mut details = facts_text(&s.facts);
            if let Some(e) = &s.error {
                if !details.is_empty() {
                    details.push(' ');
                }
                details.push_str(&format!("error={e:?}"));
            }
            let line = format!(
                "{:>11} {:>10}  {:<16} {:<7} {details}",
                format!("+{:.6}", s.start_us as f64 / 1e6),
                fmt_duration(s.duration_us),
                escape_controls(&s.step),
                escape_controls(&s.result)
            );
            let _ = writeln!(o, "{}", line.trim_end());
        }
        o.push_str(&timeline(&self.steps, TIMELINE_WIDTH));
        o
    }
}

/// Columns of the timeline's bar area.
pub const TIMELINE_WIDTH: usize = 50;

fn ms(us: u64) -> u64 {
    us.saturating_add(500) / 1000
}

/// The steps on one time axis (pure): one row per step in start order,
/// its start, end and duration in ms and a bar over `width` columns
/// scaled to the last step's end. Steps that ran at the same time (the
/// helper thread's module loads next to the network, login and disk) have
/// bars over the same columns. `#` ok, `x` error, `~` still running.
pub fn timeline(steps: &[StepReport], width: usize) -> String {
    let width = width.clamp(10, 400);
    let mut o = String::new();
    if steps.is_empty() {
        return o;
    }
    let end_of = |s: &StepReport| s.start_us.saturating_add(s.duration_us);
    let span = steps.iter().map(end_of).max().unwrap_or(0).max(1);
    let names: Vec<String> = steps
        .iter()
        .map(|s| escape_controls(&s.step).into_owned())
        .collect();
    let nw = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(16, 40);
    let col = |t: u64, up: bool| -> usize {
        let w = width as u128;
        let (t, span) = (u128::from(t), u128::from(span));
        let c = if up {
            (t * w).div_ceil(span)
        } else {
            t * w / span
        };
        usize::try_from(c).unwrap_or(width).min(width)
    };
    let _ = writeln!(
        o,
        "\ntimeline (ms since the agent started; one column = {:.1} ms):",
        span as f64 / 1000.0 / width as f64
    );
    let right = format!("{} ms", ms(span));
    let pad = (width + 1).saturating_sub(right.len());
    let _ = writeln!(
        o,
        "{:<nw$} {:>7} {:>7} {:>7}  0{:pad$}{right}",
        "step", "start", "end", "took", ""
    );
    let mut order: Vec<usize> = (0..steps.len()).collect();
    order.sort_by_key(|&i| steps.get(i).map(|s| (s.start_us, end_of(s))));
    for i in order {
        let (Some(s), Some(name)) = (steps.get(i), names.get(i)) else {
            continue;
        };
        let (a, b) = (col(s.start_us, false), col(end_of(s), true));
        let a = a.min(width - 1);
        let b = b.max(a + 1);
        let mark = match s.result.as_str() {
            "ok" => '#',
            "running" => '~',
            _ => 'x',
        };
        let mut bar = String::with_capacity(width + 2);
        bar.push('|');
        bar.extend((0..width).map(|c| if c >= a && c < b { mark } else { ' ' }));
        bar.push('|');
        let _ = writeln!(
            o,
            "{name:<nw$} {:>7} {:>7} {:>7}  {bar}",
            ms(s.start_us),
            ms(end_of(s)),
            ms(s.duration_us)
        );
    }
    o
}

/// `key=value key=value`, strings unquoted unless they contain a space;
/// control characters in keys and values escaped (facts carry what DHCP,
/// targets and the config server sent).
pub fn facts_text(facts: &Map<String, Value>) -> String {
    let mut o = String::new();
    for (k, v) in facts {
        if !o.is_empty() {
            o.push(' ');
        }
        let k = escape_controls(k);
        match v {
            Value::String(s) if !s.contains(' ') && !s.is_empty() => {
                let _ = write!(o, "{k}={}", escape_controls(s));
            }
            other => {
                let _ = write!(o, "{k}={other}");
            }
        }
    }
    o
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A forged `boot.json` (or a target, DHCP or config server that put
    /// newlines into a fact) cannot add lines to `netboot report`.
    #[test]
    fn render_escapes_every_string_from_the_file() {
        let json = r#"{"v":1,"outcome":"ok\nboot ok in 1s (all good)","error":"e\u001b[2J",
            "total_us":5,"steps":[{"step":"net.link\n+0.000001 fake","start_us":1,
            "duration_us":2,"result":"ok\r","error":"x\ny",
            "facts":{"hostname":"h\nnet.addr ok","k\u0007":1,"dns":["a\nb"]}}]}"#;
        let r: BootReport = serde_json::from_str(json).unwrap();
        let out = r.render();
        assert_eq!(
            out,
            "boot ok\\nboot ok in 1s (all good) in 5us (1 steps, 1 not ok)\n\
             error: e\\u{1b}[2J\n\
             \n\
             slowest first:\n\
             \x20      2us net.link\\n+0.000001 fake  (ok\\r)\n\
             \n\
             in order:\n\
             \x20     start   duration  step             result  details\n\
             \x20 +0.000001        2us  net.link\\n+0.000001 fake ok\\r    \
             dns=[\"a\\nb\"] hostname=\"h\\nnet.addr ok\" k\\u{7}=1 error=\"x\\ny\"\n\
             \n\
             timeline (ms since the agent started; one column = 0.0 ms):\n\
             step                       start     end    took  0                                               0 ms\n\
             net.link\\n+0.000001 fake       0       0       0  |                xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx|\n"
        );
        assert_eq!(out.lines().count(), 13);
        assert!(!out.contains('\r') && !out.contains('\u{1b}') && !out.contains('\u{7}'));
    }

    fn st(step: &str, start_us: u64, duration_us: u64, result: &str) -> StepReport {
        StepReport {
            step: step.into(),
            start_us,
            duration_us,
            result: result.into(),
            error: None,
            facts: Map::new(),
        }
    }

    /// Parallel steps share columns; rows come in start order with ms
    /// figures; a step too short for a column still gets one.
    #[test]
    fn timeline_shows_overlapping_steps_on_one_axis() {
        let steps = vec![
            st("modules", 1_000, 399_000, "ok"),
            st("net.link", 400_000, 10_000, "ok"),
            // Recorded late (helper thread), started before net.link.
            st("modules.storage", 400_000, 300_000, "ok"),
            st("iscsi.login", 700_000, 100_000, "error"),
            st("modules.fs", 700_000, 300_000, "ok"),
            st("root.mount", 1_000_000, 0, "running"),
        ];
        let got = timeline(&steps, 20);
        let want = "\ntimeline (ms since the agent started; one column = 50.0 ms):\n\
step               start     end    took  0              1000 ms\n\
modules                1     400     399  |########            |\n\
net.link             400     410      10  |        #           |\n\
modules.storage      400     700     300  |        ######      |\n\
iscsi.login          700     800     100  |              xx    |\n\
modules.fs           700    1000     300  |              ######|\n\
root.mount          1000    1000       0  |                   ~|\n";
        assert_eq!(got, want);
        // net.link ran inside modules.storage's span: its bar lies within.
        let rows: Vec<&str> = got.lines().skip(3).collect();
        let cols = |r: &str| -> Vec<usize> {
            r.split('|')
                .nth(1)
                .unwrap()
                .char_indices()
                .filter(|(_, c)| *c != ' ')
                .map(|(i, _)| i)
                .collect()
        };
        let storage = cols(rows[2]);
        assert!(cols(rows[1]).iter().all(|c| storage.contains(c)));
        assert!(timeline(&[], 20).is_empty());
    }

    #[test]
    fn timeline_of_a_zero_length_boot_and_a_hostile_name() {
        let got = timeline(&[st("a\nb", 0, 0, "ok")], 10);
        assert_eq!(got.lines().count(), 4, "{got}");
        assert!(got.contains("a\\nb"));
        assert!(got.ends_with("|#         |\n"), "{got}");
    }

    #[test]
    fn durations() {
        assert_eq!(fmt_duration(812), "812us");
        assert_eq!(fmt_duration(12_345), "12.3ms");
        assert_eq!(fmt_duration(6_612_000), "6.612s");
    }
}
