//! Access to /proc and /sys through a configurable root directory.
//!
//! Every read and write of a kernel file in this crate goes through [`SysRoot`], so tests can
//! point the tuner at a fake tree in a temporary directory and the real machine is never touched
//! unless the root is `/`.

use std::fs;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

/// Magic number of procfs in `statfs.f_type` (from `linux/magic.h`).
const PROC_SUPER_MAGIC: i64 = 0x9fa0;
/// Magic number of sysfs in `statfs.f_type` (from `linux/magic.h`).
const SYSFS_MAGIC: i64 = 0x6265_6572;

/// An error reading or writing a file below the root, with the path that failed.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct SysError {
    /// What was being done, e.g. "read" or "write".
    pub op: &'static str,
    /// The full path (root included) that failed.
    pub path: PathBuf,
    /// The underlying I/O error.
    #[source]
    pub source: io::Error,
}

impl SysError {
    /// True when the file does not exist, which is how tests simulate an unreadable value.
    pub fn is_not_found(&self) -> bool {
        self.source.kind() == io::ErrorKind::NotFound
    }
}

/// A root directory under which `/proc`, `/sys` and the state file are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysRoot {
    root: PathBuf,
}

impl Default for SysRoot {
    fn default() -> Self {
        SysRoot::new("/")
    }
}

impl SysRoot {
    /// Creates a root; `/` is the real machine.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        SysRoot { root: root.into() }
    }

    /// The root directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// True when this root is the real machine rather than a fake tree.
    pub fn is_real(&self) -> bool {
        self.root == Path::new("/")
    }

    /// Resolves an absolute system path such as `/proc/sys/vm/swappiness` below the root.
    ///
    /// Parent components are dropped rather than followed so that a path can never escape the
    /// root lexically.
    pub fn path(&self, abs: impl AsRef<Path>) -> PathBuf {
        let mut out = self.root.clone();
        for c in abs.as_ref().components() {
            if let Component::Normal(part) = c {
                out.push(part);
            }
        }
        out
    }

    /// Reads a whole file as text.
    pub fn read(&self, abs: impl AsRef<Path>) -> Result<String, SysError> {
        let path = self.path(abs);
        fs::read_to_string(&path).map_err(|source| SysError {
            op: "read",
            path,
            source,
        })
    }

    /// Reads a file and trims surrounding whitespace, which is how single-value kernel
    /// attributes are compared.
    pub fn read_trimmed(&self, abs: impl AsRef<Path>) -> Result<String, SysError> {
        self.read(abs).map(|s| s.trim().to_string())
    }

    /// True when the path exists below the root.
    pub fn exists(&self, abs: impl AsRef<Path>) -> bool {
        self.path(abs).exists()
    }

    /// Lists the entry names of a directory, sorted, skipping names that are not UTF-8.
    pub fn list_dir(&self, abs: impl AsRef<Path>) -> Result<Vec<String>, SysError> {
        let path = self.path(abs);
        let rd = fs::read_dir(&path).map_err(|source| SysError {
            op: "list",
            path: path.clone(),
            source,
        })?;
        let mut names = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|source| SysError {
                op: "list",
                path: path.clone(),
                source,
            })?;
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Writes a value to a file in a single `write` call, as kernel attributes require.
    pub fn write(&self, abs: impl AsRef<Path>, value: &str) -> Result<(), SysError> {
        let path = self.path(abs);
        let result = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .and_then(|mut f| f.write_all(value.as_bytes()));
        result.map_err(|source| SysError {
            op: "write",
            path,
            source,
        })
    }

    /// True when the file lives on procfs or sysfs, i.e. it is a kernel attribute that parses
    /// what is written to it rather than storing the bytes.
    ///
    /// Revert needs to know this: a kernel attribute rendered as `a [b] c` only accepts `b`,
    /// while a plain file (a fake tree in tests) must get its original bytes back.
    pub fn is_kernel_attribute(&self, abs: impl AsRef<Path>) -> bool {
        use std::os::unix::ffi::OsStrExt;
        let path = self.path(abs);
        let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: `statfs` only writes into the zeroed struct we pass and reads the
        // NUL-terminated path, both of which outlive the call.
        let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::statfs(c_path.as_ptr(), &mut buf) };
        if rc != 0 {
            return false;
        }
        // The field type differs between architectures, so widen it before comparing.
        #[allow(clippy::unnecessary_cast)]
        let f_type = buf.f_type as i64;
        f_type == PROC_SUPER_MAGIC || f_type == SYSFS_MAGIC
    }
}

/// Extracts the selected entry from a multiple-choice kernel attribute such as
/// `always [madvise] never`; a single-value file is returned trimmed.
pub fn selected_value(raw: &str) -> String {
    if let (Some(open), Some(close)) = (raw.find('['), raw.find(']')) {
        if open < close {
            return raw[open + 1..close].trim().to_string();
        }
    }
    raw.trim().to_string()
}

/// Lists the choices of a multiple-choice attribute such as `[mq-deadline] none kyber`.
pub fn choices(raw: &str) -> Vec<String> {
    raw.split_whitespace()
        .map(|w| w.trim_matches(|c| c == '[' || c == ']').to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_stays_below_root() {
        let r = SysRoot::new("/tmp/fake");
        assert_eq!(
            r.path("/proc/sys/vm/swappiness"),
            PathBuf::from("/tmp/fake/proc/sys/vm/swappiness")
        );
        assert_eq!(
            r.path("/../../etc/passwd"),
            PathBuf::from("/tmp/fake/etc/passwd")
        );
    }

    #[test]
    fn selected_and_choices() {
        assert_eq!(selected_value("always [madvise] never\n"), "madvise");
        assert_eq!(selected_value("performance\n"), "performance");
        assert_eq!(selected_value("[none] mq-deadline"), "none");
        assert_eq!(
            choices("[mq-deadline] none kyber\n"),
            vec!["mq-deadline", "none", "kyber"]
        );
    }

    #[test]
    fn plain_file_is_not_kernel_attribute() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("f"), "x").expect("write");
        let r = SysRoot::new(dir.path());
        assert!(!r.is_kernel_attribute("/f"));
        assert!(!r.is_kernel_attribute("/missing"));
    }

    #[test]
    fn procfs_is_kernel_attribute() {
        let r = SysRoot::new("/");
        if r.exists("/proc/self/status") {
            assert!(r.is_kernel_attribute("/proc/self/status"));
        }
    }
}
