//! The check report: one [`Item`] per setting and subject, rendered as text or JSON.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// How a setting compares with the recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The current value matches the recommendation.
    Ok,
    /// The current value differs from the recommendation and costs the broker something.
    Warn,
    /// The broker cannot run correctly with this value (for example io_uring is disabled).
    Fail,
    /// The value could not be read (missing file, parse error).
    Unreadable,
    /// Reported for the record; there is no single right value.
    Info,
}

impl Status {
    /// A fixed-width label for the text table.
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Unreadable => "unreadable",
            Status::Info => "info",
        }
    }
}

/// One file write that `--apply` would perform to reach the recommendation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fix {
    /// Absolute system path (resolved below the root when applied).
    pub path: String,
    /// The value to write.
    pub value: String,
}

/// The result of checking one setting for one subject (a CPU group, a device, an interface).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// The setting's stable name, as accepted by `--only` (e.g. `cpu-governor`).
    pub setting: String,
    /// A human title (e.g. "CPU frequency governor").
    pub title: String,
    /// What the value belongs to, e.g. `nvme0n1`, `cpu0-15` or `system`.
    pub subject: String,
    /// The current value, or a description of why it could not be read.
    pub current: String,
    /// The recommended value.
    pub recommended: String,
    /// How the current value compares with the recommendation.
    pub status: Status,
    /// Why the setting matters for this broker.
    pub why: String,
    /// How to change it by hand (and persistently).
    pub change: String,
    /// How to undo the change by hand.
    pub revert: String,
    /// Extra observations, e.g. the error that made the value unreadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The writes `--apply` would perform; empty when the setting is check-only or already ok.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fixes: Vec<Fix>,
}

/// Counts of items per status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub ok: usize,
    pub warn: usize,
    pub fail: usize,
    pub unreadable: usize,
    pub info: usize,
}

/// The full `--check` report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The root the report was read from (`/` on a real machine).
    pub root: String,
    /// The data directory whose filesystem and device were checked.
    pub data_dir: String,
    /// Seconds since the Unix epoch when the report was produced.
    pub generated_at_unix_s: u64,
    /// Counts of items per status.
    pub summary: Summary,
    /// One entry per setting and subject, in a stable order.
    pub items: Vec<Item>,
}

impl Report {
    /// Builds a report and fills in the summary.
    pub fn new(root: String, data_dir: String, items: Vec<Item>) -> Report {
        let mut summary = Summary::default();
        for item in &items {
            match item.status {
                Status::Ok => summary.ok += 1,
                Status::Warn => summary.warn += 1,
                Status::Fail => summary.fail += 1,
                Status::Unreadable => summary.unreadable += 1,
                Status::Info => summary.info += 1,
            }
        }
        let generated_at_unix_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Report {
            root,
            data_dir,
            generated_at_unix_s,
            summary,
            items,
        }
    }

    /// Renders the report as pretty JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain strings and numbers cannot fail; fall back to an error object
        // rather than panicking just in case.
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\": \"cannot serialise report: {e}\"}}"))
    }

    /// Renders the report as an aligned table followed by one detail section per item.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "corelog tune --check (root {}, data dir {})\n",
            self.root, self.data_dir
        );

        let headers = ["SETTING", "SUBJECT", "STATUS", "CURRENT", "RECOMMENDED"];
        let rows: Vec<[String; 5]> = self
            .items
            .iter()
            .map(|i| {
                [
                    i.setting.clone(),
                    shorten(&i.subject, 24),
                    i.status.label().to_string(),
                    shorten(&i.current, 40),
                    shorten(&i.recommended, 40),
                ]
            })
            .collect();
        let mut widths = headers.map(|h| h.chars().count());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row.iter()) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: [&str; 5]| {
            let mut s = String::new();
            for (k, (cell, w)) in cells.iter().zip(widths.iter()).enumerate() {
                if k + 1 == cells.len() {
                    s.push_str(cell);
                } else {
                    let pad = w.saturating_sub(cell.chars().count());
                    s.push_str(cell);
                    s.push_str(&" ".repeat(pad + 2));
                }
            }
            s.trim_end().to_string()
        };
        let _ = writeln!(out, "{}", line(headers));
        for row in &rows {
            let cells = [
                row[0].as_str(),
                row[1].as_str(),
                row[2].as_str(),
                row[3].as_str(),
                row[4].as_str(),
            ];
            let _ = writeln!(out, "{}", line(cells));
        }
        let s = &self.summary;
        let _ = writeln!(
            out,
            "\nSummary: {} ok, {} warn, {} fail, {} unreadable, {} info\n",
            s.ok, s.warn, s.fail, s.unreadable, s.info
        );

        let _ = writeln!(out, "Details");
        let mut explained: Vec<&str> = Vec::new();
        for item in &self.items {
            let _ = writeln!(
                out,
                "\n{} ({}) on {} [{}]",
                item.setting,
                item.title,
                item.subject,
                item.status.label()
            );
            let _ = writeln!(out, "  current:     {}", item.current);
            let _ = writeln!(out, "  recommended: {}", item.recommended);
            // The reason is per setting, so print it once rather than for every device.
            if !explained.contains(&item.setting.as_str()) {
                explained.push(&item.setting);
                let _ = writeln!(out, "  why:         {}", item.why);
            }
            let _ = writeln!(out, "  change:      {}", item.change);
            let _ = writeln!(out, "  revert:      {}", item.revert);
            if let Some(note) = &item.note {
                let _ = writeln!(out, "  note:        {note}");
            }
            if !item.fixes.is_empty() {
                let _ = writeln!(
                    out,
                    "  --apply:     writes {} file(s), e.g. {} <- {}",
                    item.fixes.len(),
                    item.fixes[0].path,
                    item.fixes[0].value
                );
            }
        }
        out
    }
}

/// Truncates a cell to `max` characters with an ellipsis so the table stays readable.
fn shorten(s: &str, max: usize) -> String {
    let s = s.replace('\n', " ");
    if s.chars().count() <= max {
        s
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(status: Status) -> Item {
        Item {
            setting: "swappiness".into(),
            title: "Swappiness".into(),
            subject: "system".into(),
            current: "60".into(),
            recommended: "1".into(),
            status,
            why: "why".into(),
            change: "change".into(),
            revert: "revert".into(),
            note: None,
            fixes: vec![],
        }
    }

    #[test]
    fn summary_and_rendering() {
        let r = Report::new(
            "/".into(),
            "/data".into(),
            vec![item(Status::Warn), item(Status::Ok)],
        );
        assert_eq!(r.summary.warn, 1);
        assert_eq!(r.summary.ok, 1);
        let text = r.to_text();
        assert!(text.contains("SETTING"));
        assert!(text.contains("swappiness"));
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).expect("valid json");
        assert_eq!(json["items"][0]["status"], "warn");
    }

    #[test]
    fn shorten_cells() {
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abc", 4), "abc");
    }
}
