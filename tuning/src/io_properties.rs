//! The io-properties file written by `--probe-disk` and read by the broker at start-up.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The file name the probe writes by default, inside the probed directory.
pub const DEFAULT_FILE_NAME: &str = "io-properties.toml";

/// The current format version; `load` rejects other versions rather than misreading them.
pub const FORMAT_VERSION: u32 = 1;

/// Errors loading or saving an io-properties file, each naming the file.
#[derive(Debug, thiserror::Error)]
pub enum IoPropertiesError {
    #[error("cannot read io-properties file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse io-properties file {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("invalid io-properties file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("cannot write io-properties file {path}: {message}")]
    Write { path: PathBuf, message: String },
}

/// One measured point of the probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// `write` or `read`.
    pub op: String,
    /// Size of each O_DIRECT request.
    pub block_bytes: u64,
    /// Requests in flight (one thread each).
    pub queue_depth: u32,
    /// Sustained bandwidth over the step.
    pub bandwidth_bytes_per_s: u64,
    /// Requests completed per second.
    pub iops: u64,
}

/// What the probe measured about the device behind a data directory, and what the broker
/// should do about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IoProperties {
    /// Format version of this file.
    pub format_version: u32,
    /// The directory that was probed.
    pub path: String,
    /// When the measurement finished, RFC 3339 in UTC.
    pub measured_at: String,
    /// Peak sequential O_DIRECT write bandwidth over all block sizes and queue depths.
    pub write_bandwidth_bytes_per_s: u64,
    /// Peak sequential O_DIRECT read bandwidth over all block sizes and queue depths.
    pub read_bandwidth_bytes_per_s: u64,
    /// Median latency of fdatasync after a 4 KiB direct write.
    pub fdatasync_p50_us: u64,
    /// 99th percentile latency of fdatasync after a 4 KiB direct write.
    pub fdatasync_p99_us: u64,
    /// Recommended write size: the smallest block size reaching 90% of peak write bandwidth.
    pub write_chunk_bytes: u64,
    /// Recommended writes in flight at that size: the smallest depth reaching 90% of the best
    /// bandwidth measured for it.
    pub write_queue_depth: u32,
    /// Size of the scratch file the probe used.
    #[serde(default)]
    pub probe_file_bytes: u64,
    /// Duration of each measured step.
    #[serde(default)]
    pub probe_step_ms: u64,
    /// Every measured point, for humans and later analysis.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
}

impl IoProperties {
    /// Loads and validates an io-properties file.
    pub fn load(path: impl AsRef<Path>) -> Result<IoProperties, IoPropertiesError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| IoPropertiesError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let props: IoProperties =
            toml::from_str(&text).map_err(|source| IoPropertiesError::Parse {
                path: path.to_path_buf(),
                source,
            })?;
        props
            .validate()
            .map_err(|message| IoPropertiesError::Invalid {
                path: path.to_path_buf(),
                message,
            })?;
        Ok(props)
    }

    /// Writes the file atomically (temp file + rename) so the broker never reads half a file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), IoPropertiesError> {
        let path = path.as_ref();
        let err = |message: String| IoPropertiesError::Write {
            path: path.to_path_buf(),
            message,
        };
        self.validate().map_err(&err)?;
        let text = toml::to_string_pretty(self).map_err(|e| err(e.to_string()))?;
        let header = "# Written by `corelog tune --probe-disk`; read by the broker at start-up.\n";
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, format!("{header}{text}")).map_err(|e| err(e.to_string()))?;
        std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
    }

    /// Checks the values the broker relies on, so a hand-edited file fails loudly at start-up
    /// instead of producing a zero-sized write chunk.
    pub fn validate(&self) -> Result<(), String> {
        if self.format_version != FORMAT_VERSION {
            return Err(format!(
                "format_version {} is not supported (expected {FORMAT_VERSION})",
                self.format_version
            ));
        }
        if self.write_chunk_bytes == 0 || !self.write_chunk_bytes.is_multiple_of(4096) {
            return Err(format!(
                "write_chunk_bytes {} must be a positive multiple of 4096",
                self.write_chunk_bytes
            ));
        }
        if self.write_queue_depth == 0 {
            return Err("write_queue_depth must be at least 1".to_string());
        }
        if self.write_bandwidth_bytes_per_s == 0 || self.read_bandwidth_bytes_per_s == 0 {
            return Err("bandwidths must be positive".to_string());
        }
        if self.fdatasync_p50_us > self.fdatasync_p99_us {
            return Err("fdatasync_p50_us exceeds fdatasync_p99_us".to_string());
        }
        Ok(())
    }

    /// A one-line summary for the broker's start-up log.
    pub fn summary(&self) -> String {
        format!(
            "write chunk {} KiB, {} writes in flight (disk at {} measured {}: write {} MB/s, \
             read {} MB/s, fdatasync p50 {} us, p99 {} us)",
            self.write_chunk_bytes / 1024,
            self.write_queue_depth,
            self.path,
            self.measured_at,
            self.write_bandwidth_bytes_per_s / 1_000_000,
            self.read_bandwidth_bytes_per_s / 1_000_000,
            self.fdatasync_p50_us,
            self.fdatasync_p99_us
        )
    }
}

/// Formats seconds since the Unix epoch as RFC 3339 UTC (`2024-05-01T12:00:00Z`) without a
/// date-time dependency.
pub fn rfc3339_utc(unix_s: u64) -> String {
    let days = (unix_s / 86_400) as i64;
    let secs = unix_s % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm), valid for the whole u64 range we can see.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> IoProperties {
        IoProperties {
            format_version: FORMAT_VERSION,
            path: "/var/lib/corelog".into(),
            measured_at: rfc3339_utc(0),
            write_bandwidth_bytes_per_s: 2_000_000_000,
            read_bandwidth_bytes_per_s: 3_000_000_000,
            fdatasync_p50_us: 20,
            fdatasync_p99_us: 80,
            write_chunk_bytes: 131_072,
            write_queue_depth: 4,
            probe_file_bytes: 1 << 30,
            probe_step_ms: 250,
            steps: vec![],
        }
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_714_564_800), "2024-05-01T12:00:00Z");
    }

    #[test]
    fn save_load_round_trip_and_validation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(DEFAULT_FILE_NAME);
        let p = sample();
        p.save(&path).expect("save");
        assert_eq!(IoProperties::load(&path).expect("load"), p);
        assert!(p.summary().contains("128 KiB"));

        std::fs::write(&path, "write_chunk_bytes = 0").expect("write");
        assert!(matches!(
            IoProperties::load(&path),
            Err(IoPropertiesError::Parse { .. })
        ));
        let mut bad = sample();
        bad.write_chunk_bytes = 1000;
        std::fs::write(&path, toml::to_string(&bad).expect("encode")).expect("write");
        assert!(matches!(
            IoProperties::load(&path),
            Err(IoPropertiesError::Invalid { .. })
        ));
        assert!(matches!(
            IoProperties::load(dir.path().join("missing.toml")),
            Err(IoPropertiesError::Read { .. })
        ));
    }
}
