//! The seed frames of the network fuzzer (`tests/clients/netfuzz.py`).
//!
//! The fuzzer mutates valid requests of every api and version the broker
//! advertises. Building those in Python would mean a second hand-written
//! encoder for 27 apis; the fully populated requests of this crate's tests
//! already cover every field of every version, so this test writes them out
//! as `tests/clients/fuzz_seeds.txt` (one frame per line: api key, version,
//! hex of the whole frame, size prefix included) and fails when the file no
//! longer matches the api table, so the fuzzer cannot silently fall behind.
//!
//! Regenerate with `UPDATE_FUZZ_SEEDS=1 cargo test -p corelog-protocol --test
//! fuzz_seeds`.

mod common;

use std::fmt::Write as _;
use std::path::PathBuf;

use common::{built_frame, pairs};
use corelog_protocol::SUPPORTED_APIS;

fn seeds_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/clients/fuzz_seeds.txt")
}

fn render() -> String {
    let mut out = String::from(
        "# Seed frames for tests/clients/netfuzz.py: api_key version hex(frame).\n\
         # Written by broker/protocol/tests/fuzz_seeds.rs; do not edit by hand.\n",
    );
    for (api_key, version) in pairs(SUPPORTED_APIS) {
        let (_, wire) = built_frame(api_key, version, 1);
        let hex: String = wire.iter().map(|b| format!("{b:02x}")).collect();
        writeln!(out, "{} {} {}", api_key as i16, version, hex).unwrap();
    }
    out
}

#[test]
fn seed_file_matches_the_api_table() {
    let want = render();
    let path = seeds_path();
    if std::env::var_os("UPDATE_FUZZ_SEEDS").is_some() {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is out of date with the api table; regenerate it with \
         UPDATE_FUZZ_SEEDS=1 cargo test -p corelog-protocol --test fuzz_seeds",
        path.display()
    );
}
