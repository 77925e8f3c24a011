//! What the broker calls at start-up: the checks that affect it, as one-line findings.

use crate::report::{Report, Status};
use crate::settings::{self, Context};
use crate::sysroot::SysRoot;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How much a finding matters to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The broker cannot work correctly (io_uring disabled, memlock below the minimum, data on
    /// tmpfs); it should refuse to start.
    Error,
    /// The broker works but slower or with worse tail latency; log it.
    Warning,
}

/// One failed check, for the broker's start-up log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The setting name, as accepted by `corelog tune --only`.
    pub setting: String,
    /// Error or warning.
    pub severity: Severity,
    /// One line: what is wrong, the recommendation, and the hint to run the tuner.
    pub message: String,
}

/// Runs every file-based check below `root` for `data_dir` and returns the failed ones.
///
/// This does not create an io_uring instance; call [`crate::io_uring_available`] for that.
/// Unreadable values are not findings: many hosts (VMs, containers) simply lack some files.
pub fn startup_findings(root: &Path, data_dir: &Path) -> Vec<Finding> {
    let mut ctx = Context::new(SysRoot::new(root), data_dir);
    ctx.live_probe = false;
    let items = match settings::check(&ctx, &[]) {
        Ok(items) => items,
        // An empty selection cannot name an unknown setting; report rather than panic anyway.
        Err(e) => {
            return vec![Finding {
                setting: "tune".into(),
                severity: Severity::Warning,
                message: format!("cannot run host checks: {e}"),
            }]
        }
    };
    items
        .into_iter()
        .filter_map(|item| {
            let severity = match item.status {
                Status::Fail => Severity::Error,
                Status::Warn => Severity::Warning,
                _ => return None,
            };
            let note = item
                .note
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            Some(Finding {
                message: format!(
                    "{} on {}: {}, recommended {}{note}; see `corelog tune --check --only {}`",
                    item.setting, item.subject, item.current, item.recommended, item.setting
                ),
                setting: item.setting,
                severity,
            })
        })
        .collect()
}

/// Builds the full check report for `root` and `data_dir`, trying a live io_uring setup only
/// when `root` is the real machine. This is what the benchmark embeds in its run.json.
pub fn check_report(root: &Path, data_dir: &Path) -> Report {
    let ctx = Context::new(SysRoot::new(root), data_dir);
    check_report_with(&ctx, &[]).unwrap_or_else(|e| {
        Report::new(
            root.display().to_string(),
            data_dir.display().to_string(),
            vec![crate::report::Item {
                setting: "tune".into(),
                title: "corelog tune".into(),
                subject: "report".into(),
                current: "error".into(),
                recommended: "n/a".into(),
                status: Status::Unreadable,
                why: e.clone(),
                change: "n/a".into(),
                revert: "n/a".into(),
                note: Some(e),
                fixes: Vec::new(),
            }],
        )
    })
}

/// Builds a report for an explicit context and `--only` selection.
pub fn check_report_with(ctx: &Context, only: &[String]) -> Result<Report, String> {
    let items = settings::check(ctx, only)?;
    Ok(Report::new(
        ctx.root.root().display().to_string(),
        ctx.data_dir.display().to_string(),
        items,
    ))
}
