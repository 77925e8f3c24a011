//! `--apply` and `--revert`: perform the fixes the checks propose, recording previous values in
//! a state file first so that every change can be undone.

use crate::report::Status;
use crate::settings::{self, Context};
use crate::sysroot::{selected_value, SysRoot};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The state file's format version, bumped on incompatible changes.
const STATE_FORMAT_VERSION: u32 = 1;

/// The default state file location, as an absolute path below the root.
pub const DEFAULT_STATE_FILE: &str = "/var/lib/corelog/tune-state.toml";

/// Errors from apply and revert.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{0}")]
    Usage(String),
    #[error("state file {path}: {message}")]
    State { path: PathBuf, message: String },
}

/// One recorded change: enough to put the file back exactly as it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The setting that made the change (for `--revert --only`).
    pub setting: String,
    /// Absolute system path, resolved below the root.
    pub path: String,
    /// The file's exact content before the change.
    pub previous_raw: String,
    /// What to write to a kernel attribute to restore it (the selected entry of a
    /// multiple-choice attribute, otherwise the trimmed previous content).
    pub restore_value: String,
    /// The value `--apply` wrote.
    pub applied_value: String,
}

/// The state file: every change not yet reverted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub format_version: u32,
    /// The root the changes were made under; revert refuses a different one.
    pub root: String,
    pub changes: Vec<Change>,
}

impl State {
    /// Loads a state file; a missing file is an empty state.
    pub fn load(path: &Path, root: &SysRoot) -> Result<State, ApplyError> {
        let err = |message: String| ApplyError::State {
            path: path.to_path_buf(),
            message,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(State {
                    format_version: STATE_FORMAT_VERSION,
                    root: root.root().display().to_string(),
                    changes: Vec::new(),
                })
            }
            Err(e) => return Err(err(format!("cannot read: {e}"))),
        };
        let state: State = toml::from_str(&text).map_err(|e| err(format!("cannot parse: {e}")))?;
        if state.format_version != STATE_FORMAT_VERSION {
            return Err(err(format!(
                "format version {} is not supported (expected {STATE_FORMAT_VERSION})",
                state.format_version
            )));
        }
        if state.root != root.root().display().to_string() {
            return Err(err(format!(
                "it records changes under root {} but --root is {}",
                state.root,
                root.root().display()
            )));
        }
        Ok(state)
    }

    /// Writes the state atomically (temp file + rename), or removes the file when empty.
    pub fn save(&self, path: &Path) -> Result<(), ApplyError> {
        let err = |message: String| ApplyError::State {
            path: path.to_path_buf(),
            message,
        };
        if self.changes.is_empty() {
            return match std::fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(err(format!("cannot remove: {e}"))),
            };
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
        }
        let text = toml::to_string_pretty(self).map_err(|e| err(format!("cannot encode: {e}")))?;
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).map_err(|e| err(format!("cannot write: {e}")))?;
        std::fs::rename(&tmp, path).map_err(|e| err(format!("cannot rename into place: {e}")))
    }
}

/// Resolves the state file path: the explicit one, or `/var/lib/corelog/tune-state.toml` below
/// the root. A fixed default (rather than one derived from the data directory) means apply and
/// revert agree without repeating flags, and a fake root keeps tests off the real /var/lib.
pub fn state_path(root: &SysRoot, explicit: Option<&Path>) -> PathBuf {
    match explicit {
        Some(p) => p.to_path_buf(),
        None => root.path(DEFAULT_STATE_FILE),
    }
}

/// What `apply` did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ApplyOutcome {
    /// Changes made (and recorded).
    pub applied: Vec<Change>,
    /// Settings that were already fine or cannot be changed by this tool.
    pub untouched: Vec<String>,
    /// Failures, one line each; the rest of the run continued.
    pub errors: Vec<String>,
}

/// Applies the fixes proposed by the selected checks.
///
/// Previous values are recorded in the state file *before* each write, so an interrupted run
/// can still be reverted. A path already recorded by an earlier apply keeps its original
/// previous value, so apply twice then revert restores the state before the first apply.
pub fn apply(
    ctx: &Context,
    only: &[String],
    state_file: &Path,
) -> Result<ApplyOutcome, ApplyError> {
    let selected = settings::select(only).map_err(ApplyError::Usage)?;
    let mut state = State::load(state_file, &ctx.root)?;
    let mut outcome = ApplyOutcome::default();

    for setting in selected {
        let items = (setting.check)(ctx);
        let mut changed_any = false;
        for item in items {
            if !matches!(item.status, Status::Warn | Status::Fail) || item.fixes.is_empty() {
                continue;
            }
            for fix in &item.fixes {
                let previous_raw = match ctx.root.read(&fix.path) {
                    Ok(v) => v,
                    Err(e) => {
                        outcome.errors.push(format!("{}: {e}", setting.name));
                        continue;
                    }
                };
                let already_recorded = state.changes.iter().any(|c| c.path == fix.path);
                if !already_recorded {
                    state.changes.push(Change {
                        setting: setting.name.to_string(),
                        path: fix.path.clone(),
                        restore_value: selected_value(&previous_raw),
                        previous_raw,
                        applied_value: fix.value.clone(),
                    });
                    state.save(state_file)?;
                }
                match ctx.root.write(&fix.path, &format!("{}\n", fix.value)) {
                    Ok(()) => {
                        changed_any = true;
                        if let Some(c) = state.changes.iter_mut().find(|c| c.path == fix.path) {
                            c.applied_value = fix.value.clone();
                            outcome.applied.push(c.clone());
                        }
                    }
                    Err(e) => {
                        outcome.errors.push(format!("{}: {e}", setting.name));
                        // Nothing changed, so nothing needs reverting: forget the record we
                        // just made (but keep one from an earlier, successful apply).
                        if !already_recorded {
                            state.changes.retain(|c| c.path != fix.path);
                        }
                    }
                }
            }
        }
        if !changed_any {
            outcome.untouched.push(setting.name.to_string());
        }
    }
    state.save(state_file)?;
    Ok(outcome)
}

/// What `revert` did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RevertOutcome {
    /// Changes undone.
    pub reverted: Vec<Change>,
    /// Failures, one line each; the failed changes stay in the state file.
    pub errors: Vec<String>,
}

/// Restores the values recorded by `apply`, newest first, and removes them from the state file.
pub fn revert(
    root: &SysRoot,
    only: &[String],
    state_file: &Path,
) -> Result<RevertOutcome, ApplyError> {
    settings::select(only).map_err(ApplyError::Usage)?;
    let mut state = State::load(state_file, root)?;
    let mut outcome = RevertOutcome::default();
    let mut remaining = Vec::new();
    for change in state.changes.drain(..).rev() {
        if !only.is_empty() && !only.contains(&change.setting) {
            remaining.push(change);
            continue;
        }
        // A kernel attribute parses what is written (and rejects the `a [b] c` rendering), a
        // plain file stores it; write what each needs to end up as it was.
        let value = if root.is_kernel_attribute(&change.path) {
            format!("{}\n", change.restore_value)
        } else {
            change.previous_raw.clone()
        };
        match root.write(&change.path, &value) {
            Ok(()) => outcome.reverted.push(change),
            Err(e) => {
                outcome.errors.push(format!("{}: {e}", change.setting));
                remaining.push(change);
            }
        }
    }
    remaining.reverse();
    state.changes = remaining;
    state.save(state_file)?;
    Ok(outcome)
}
