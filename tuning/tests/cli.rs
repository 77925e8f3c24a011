//! The `corelog tune` entry point, driven through clap exactly as the broker binary will.

mod common;

use clap::{CommandFactory, Parser};
use common::{FakeRoot, DATA_DIR};
use corelog_tuning::cli::{EXIT_OK, EXIT_USAGE};
use corelog_tuning::{run_with_output, settings, TuneArgs};

/// Stands in for the broker binary's `corelog tune` subcommand.
#[derive(Parser)]
#[command(name = "corelog-tune")]
struct Cli {
    #[command(flatten)]
    args: TuneArgs,
}

fn run(argv: &[&str]) -> (u8, String, String) {
    let cli = Cli::try_parse_from(std::iter::once("corelog-tune").chain(argv.iter().copied()))
        .unwrap_or_else(|e| panic!("parse {argv:?}: {e}"));
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = run_with_output(cli.args, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).expect("utf8"),
        String::from_utf8(err).expect("utf8"),
    )
}

#[test]
fn clap_definition_is_consistent() {
    Cli::command().debug_assert();
    assert!(Cli::try_parse_from(["x", "--apply", "--revert"]).is_err());
    assert!(Cli::try_parse_from(["x", "--check", "--probe-disk", "/tmp"]).is_err());
}

#[test]
fn check_text_mentions_every_setting() {
    let fake = FakeRoot::new();
    let root = fake.path().to_str().expect("utf8 path");
    let (code, out, err) = run(&["--check", "--root", root, "--data-dir", DATA_DIR]);
    assert_eq!(code, EXIT_OK, "{err}");
    for name in settings::names() {
        assert!(out.contains(name), "{name} missing from:\n{out}");
    }
    for word in [
        "SETTING",
        "CURRENT",
        "RECOMMENDED",
        "why:",
        "change:",
        "revert:",
        "Summary:",
    ] {
        assert!(out.contains(word), "{word} missing");
    }
    // The default action is --check.
    let (code, default_out, _) = run(&["--root", root, "--data-dir", DATA_DIR]);
    assert_eq!(code, EXIT_OK);
    assert!(default_out.contains("cpu-governor"));
}

#[test]
fn check_json_is_machine_readable() {
    let fake = FakeRoot::new();
    let root = fake.path().to_str().expect("utf8 path");
    let (code, out, _) = run(&[
        "--root",
        root,
        "--format",
        "json",
        "--only",
        "swappiness,thp",
    ]);
    assert_eq!(code, EXIT_OK);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let items = v["items"].as_array().expect("items");
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["setting"], "thp");
    assert_eq!(items[2]["setting"], "swappiness");
    assert_eq!(items[2]["status"], "warn");
    assert_eq!(v["summary"]["warn"], 3);
}

#[test]
fn apply_and_revert_through_the_cli() {
    let fake = FakeRoot::new();
    let root = fake.path().to_str().expect("utf8 path");
    let before = fake.hashes();
    let (code, out, err) = run(&[
        "--apply",
        "--root",
        root,
        "--only",
        "swappiness",
        "clocksource",
    ]);
    assert_eq!(code, EXIT_OK, "{err}");
    assert!(out.contains("applied swappiness"), "{out}");
    assert!(out.contains("applied clocksource"), "{out}");
    assert_eq!(fake.read("/proc/sys/vm/swappiness"), "1\n");
    assert_eq!(
        fake.read("/sys/devices/system/clocksource/clocksource0/current_clocksource"),
        "tsc\n"
    );
    assert!(fake.file("/var/lib/corelog/tune-state.toml").exists());
    assert_eq!(
        fake.read("/proc/sys/fs/aio-max-nr"),
        "65536\n",
        "--only must limit apply"
    );

    let (code, out, err) = run(&["--revert", "--root", root]);
    assert_eq!(code, EXIT_OK, "{err}");
    assert!(out.contains("reverted swappiness"), "{out}");
    assert!(!fake.file("/var/lib/corelog/tune-state.toml").exists());
    assert_eq!(before, fake.hashes());

    let (code, out, _) = run(&["--revert", "--root", root]);
    assert_eq!(code, EXIT_OK);
    assert!(out.contains("nothing to revert"));
}

#[test]
fn bad_arguments_exit_with_usage_status() {
    let fake = FakeRoot::new();
    let root = fake.path().to_str().expect("utf8 path");
    let (code, _, err) = run(&["--root", root, "--only", "turbo"]);
    assert_eq!(code, EXIT_USAGE);
    assert!(err.contains("unknown setting"), "{err}");
    let (code, _, err) = run(&["--root", root, "--shard-cpus", "3-1"]);
    assert_eq!(code, EXIT_USAGE);
    assert!(err.contains("--shard-cpus"), "{err}");
    let before = fake.hashes();
    let (code, _, _) = run(&["--apply", "--root", root, "--only", "nope"]);
    assert_eq!(code, EXIT_USAGE);
    assert_eq!(before, fake.hashes(), "nothing may change on a usage error");
}
