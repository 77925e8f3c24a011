//! `corelog tune`: check, apply and revert the host settings that matter to a thread-per-core,
//! io_uring, direct-I/O broker, and probe the data disk to choose write sizes.
//!
//! The broker uses this crate in three ways:
//!
//! * it mounts [`TuneArgs`] / [`run`] as its `tune` subcommand;
//! * at start-up it calls [`io_uring_available`] (refusing to start on error) and
//!   [`startup_findings`] (logging warnings, refusing on errors);
//! * it loads [`IoProperties`] from the file `--probe-disk` wrote to choose its write chunk size
//!   and number of writes in flight.
//!
//! Every access to `/proc` and `/sys` goes through a root directory (see [`SysRoot`]) so the
//! whole crate is testable against a fake tree.

pub mod apply;
pub mod cli;
pub mod cpulist;
pub mod io_properties;
pub mod probe;
pub mod report;
pub mod settings;
pub mod startup;
pub mod sysroot;

pub use cli::{run, run_with_output, Format, TuneArgs};
pub use io_properties::{IoProperties, IoPropertiesError};
pub use probe::{probe_disk, ProbeError, ProbeOptions};
pub use report::{Item, Report, Status};
pub use settings::io_uring::io_uring_available;
pub use startup::{check_report, check_report_with, startup_findings, Finding, Severity};
pub use sysroot::SysRoot;
