#!/usr/bin/env bash
# Writes the network fuzzer's seed frames (tests/clients/fuzz_seeds.txt: a
# valid, fully populated request of every supported api and version) into
# corpus/decode_request/, one file per frame, as libFuzzer's starting corpus.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/decode_request
grep -v '^#' ../../../tests/clients/fuzz_seeds.txt | while read -r api version hex; do
  printf '%s' "$hex" | xxd -r -p > "corpus/decode_request/seed-$api-$version"
done
echo "$(ls corpus/decode_request | wc -l) files in corpus/decode_request"
