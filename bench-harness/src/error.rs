//! The library's error type.
//!
//! Every variant that touches a file carries the path, so that a failure in
//! CI says which file was missing or malformed instead of a bare OS error.

use std::io;
use std::path::{Path, PathBuf};

/// Errors returned by the harness library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation on a specific path failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being attempted, e.g. "reading".
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying OS error.
        #[source]
        source: io::Error,
    },
    /// A JSON file could not be parsed or produced.
    #[error("JSON in {}: {source}", path.display())]
    Json {
        /// The JSON file involved.
        path: PathBuf,
        /// The underlying serde error.
        #[source]
        source: serde_json::Error,
    },
    /// A text file did not have the expected structure.
    #[error("parsing {}: {message}", path.display())]
    Parse {
        /// The file involved.
        path: PathBuf,
        /// What was wrong with it.
        message: String,
    },
    /// The input was well-formed but cannot be used, e.g. an empty run set.
    #[error("{0}")]
    Invalid(String),
}

/// The library's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with the action and path it happened on.
    pub fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        Error::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Extension for attaching a path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn at(self, action: &'static str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, action: &'static str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(action, path, e))
    }
}
