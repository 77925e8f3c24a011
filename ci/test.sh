#!/usr/bin/env bash
# The project's whole test suite, as the README gives it and CI runs it.
# Installs what the tests need (idempotent), builds, and runs every test
# against real files, real processes and real filesystems.
set -euo pipefail
cd "$(dirname "$0")/.."

bash ci/install-deps.sh

export CARGO_TERM_COLOR=never
# Crash test: how many SIGKILLs per run (the storage issue asks for >= 50).
export CORELOG_CRASH_KILLS="${CORELOG_CRASH_KILLS:-50}"

cargo build --workspace --all-targets --locked
if command -v cargo-nextest >/dev/null 2>&1; then
  # nextest closes with one summary line: "Summary [...] N tests run: N passed, ..."
  cargo nextest run --workspace --locked --no-fail-fast --final-status-level fail
else
  cargo test --workspace --locked --no-fail-fast
fi
cargo test --workspace --doc --locked
