#!/usr/bin/env bash
# The project's whole test suite, as the README gives it and CI runs it.
# Installs what the tests need (idempotent): Debian tools, kcat, the Debian
# and PyPI Kafka clients in .venv, cargo-nextest. Then builds and runs every
# test against real files, real processes, real filesystems and real clients.
set -euo pipefail
cd "$(dirname "$0")/.."

bash ci/install-deps.sh
bash ci/install-client-deps.sh

export CARGO_TERM_COLOR=never
# Crash test: how many SIGKILLs per run (the storage issue asks for >= 50).
export CORELOG_CRASH_KILLS="${CORELOG_CRASH_KILLS:-50}"
# Screenshots of the console tests (tests/clients/test_console.py) land here.
export CORELOG_ARTIFACTS="${CORELOG_ARTIFACTS:-$PWD/target/test-artifacts}"

# The rules a tool checks (issue 23): formatting, and clippy with the
# workspace's lints ([workspace.lints] in Cargo.toml) and no warnings.
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

cargo build --workspace --all-targets --locked

status=0
if command -v cargo-nextest >/dev/null 2>&1; then
  # nextest closes with one summary line: "Summary [...] N tests run: N passed, ..."
  cargo nextest run --workspace --locked --no-fail-fast --final-status-level fail || status=$?
else
  cargo test --workspace --locked --no-fail-fast || status=$?
fi
cargo test --workspace --doc --locked || status=$?

# The real-client suite drives the broker binary built above.
export CORELOG_BIN="${CORELOG_BIN:-$PWD/target/debug/corelog}"
# The disk left, before the two steps that write the most: a run that ends
# in "No space left on device" then says whether the machine or the
# project filled it.
df -h "$PWD" | sed 's/^/disk: /'
.venv/bin/python -m pytest tests/clients -q -p no:cacheprovider || status=$?
df -h "$PWD" | sed 's/^/disk: /'
bash ci/bench.sh || status=$?
exit $status
