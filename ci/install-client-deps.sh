#!/usr/bin/env bash
# Installs what the real-client integration suite (tests/clients) needs, on
# Debian, as root. Safe to re-run: it installs only what is missing.
#
#   - Debian packages: kcat, python3-confluent-kafka (librdkafka 2.0.2, used
#     with /usr/bin/python3), python3-venv, prometheus (promtool and the
#     server tests/clients/test_metrics.py scrapes the broker with), and Go with Debian's Sarama 1.22
#     (golang-go, golang-github-shopify-sarama-dev), and confluent-kafka-go
#     0.11.6 (golang-github-confluentinc-confluent-kafka-go-dev, with
#     librdkafka-dev), and kafka-go 0.2.1 (golang-github-segmentio-kafka-go-dev,
#     message format v1): the Go clients of tests/clients/go/, built offline
#     in GOPATH mode; chromium and chromium-driver (chromedriver), the
#     headless browser that tests/clients/test_console.py drives with
#     Selenium
#   - <repo>/.venv made with the machine's python3, holding
#     tests/clients/requirements.txt (PyPI confluent-kafka, kafka-python 3,
#     aiokafka, pytest, codecs)
#   - <repo>/.kafka-python-2: kafka-python 2.3.3 alone (pip --target), for
#     the tests of that client pinned to old protocol versions
#     (tests/clients/kafka_python_2_old_versions.py), which put it first on
#     the path
#
# Then: .venv/bin/python -m pytest tests/clients -q
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"

log() { echo "install-client-deps: $*"; }

# ---------------------------------------------------------------- Debian ---
debs=(kcat python3-confluent-kafka python3-venv prometheus golang-go golang-github-shopify-sarama-dev
      golang-github-confluentinc-confluent-kafka-go-dev golang-github-segmentio-kafka-go-dev
      chromium chromium-driver)
missing=()
for p in "${debs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-client-deps: missing Debian packages ${missing[*]}; run as root on Debian (apt-get install ${missing[*]})" >&2
    exit 1
  fi
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for p in "${debs[@]}" librdkafka1; do
  log "deb $(dpkg-query -W -f='${Package} ${Version}' "$p" 2>/dev/null || echo "$p (not installed)")"
done
if /usr/bin/python3 -c 'import confluent_kafka' 2>/dev/null; then
  log "debian python: $(/usr/bin/python3 -c 'import confluent_kafka as c; print("confluent_kafka", c.version()[0], "librdkafka", c.libversion()[0])')"
else
  echo "install-client-deps: /usr/bin/python3 cannot import confluent_kafka" >&2
  exit 1
fi

# ------------------------------------------------------------------ venv ---
# The machine's python3 (first on PATH); Debian's if there is none.
py="$(command -v python3 || echo /usr/bin/python3)"
venv="$repo/.venv"
if [ -x "$venv/bin/python" ] && ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
  log "removing broken $venv"
  rm -rf "$venv"
fi
if [ ! -x "$venv/bin/python" ]; then
  log "creating $venv with $py ($("$py" --version 2>&1))"
  "$py" -m venv "$venv"
fi

req="$repo/tests/clients/requirements.txt"
stamp="$venv/.client-deps.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] \
   || ! "$venv/bin/python" -c 'import confluent_kafka, kafka, pytest, pytest_timeout, lz4, snappy, zstandard, selenium' >/dev/null 2>&1; then
  log "pip install -r tests/clients/requirements.txt"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
  echo "$want" > "$stamp"
fi
"$venv/bin/python" - <<'EOF'
import confluent_kafka, kafka, pytest, lz4, zstandard, snappy
print("install-client-deps: venv python", __import__("sys").version.split()[0],
      "| confluent_kafka", getattr(confluent_kafka, "__version__", None) or confluent_kafka.version()[0], "librdkafka", confluent_kafka.libversion()[0],
      "| kafka-python", kafka.__version__, "| pytest", pytest.__version__,
      "| lz4", lz4.__version__, "| zstandard", zstandard.__version__)
EOF
# kafka-python 2.3.3, the version applications pinned before 3.0, beside
# the venv's 3.x (see the header).
kp2="$repo/.kafka-python-2"
if ! PYTHONPATH="$kp2" "$venv/bin/python" -c 'import kafka, sys; sys.exit(kafka.__version__ != "2.3.3")' >/dev/null 2>&1; then
  log "pip install --target .kafka-python-2 kafka-python==2.3.3"
  rm -rf "$kp2"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --target "$kp2" kafka-python==2.3.3
fi
log "kafka-python $(PYTHONPATH="$kp2" "$venv/bin/python" -c 'import kafka; print(kafka.__version__)') in .kafka-python-2"
log "kcat $(kcat -V 2>&1 | grep -m1 "^Version" || echo "(no version)")"
log "$(go version)"
log "$(chromium --version 2>/dev/null || echo "chromium (no version)") | $(chromedriver --version 2>/dev/null | head -1 || echo "chromedriver (no version)")"
