#!/usr/bin/env bash
# Seeds fuzz/corpus/wal_decoder with real WAL: the first 64 KB and 256 KB of each fixture segment,
# read with CRCs checked by the decoder and deferred (the two-thread reader's path).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p fuzz/corpus/wal_decoder
for f in tests/fixtures/wal/pg*/*.gz; do
  b=$(basename "$f" .gz)
  { printf '\x05\x04'; (gzip -dc "$f" | head -c 65536) || true; } > "fuzz/corpus/wal_decoder/$b-64k"
  { printf '\x00\x03'; (gzip -dc "$f" | head -c 262144) || true; } > "fuzz/corpus/wal_decoder/$b-256k"
  # Byte 1 >= 5 (odd quotient): CRCs deferred, as on the two-thread reader.
  { printf '\x05\x09'; (gzip -dc "$f" | head -c 65536) || true; } > "fuzz/corpus/wal_decoder/$b-64k-deferred"
  { printf '\x00\x08'; (gzip -dc "$f" | head -c 262144) || true; } > "fuzz/corpus/wal_decoder/$b-256k-deferred"
done
ls fuzz/corpus/wal_decoder | wc -l
