#!/usr/bin/env bash
# Generates >= 1 GB of WAL with a pgbench workload into a throwaway cluster and copies the
# segments to $OUT (default /tmp/fv-walbench). Used by examples/wal_bench.rs (see BENCHMARKS.md).
set -euo pipefail
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
OUT=${OUT:-/tmp/fv-walbench}
SCALE=${SCALE:-50}
SECONDS_RUN=${SECONDS_RUN:-60}
PORT=${PORT:-$(( 20000 + RANDOM % 20000 ))}
TMP=$(mktemp -d /tmp/fv-walbench-pg.XXXXXX)
chown postgres: "$TMP"
as_pg() { runuser -u postgres -- "$@"; }
cleanup() { as_pg "$PG_BIN/pg_ctl" -D "$TMP/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$TMP"; }
trap cleanup EXIT
as_pg "$PG_BIN/initdb" -D "$TMP/data" -U postgres -A trust >/dev/null
cat >> "$TMP/data/postgresql.conf" <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$TMP'
wal_keep_size = 8GB
max_wal_size = 8GB
checkpoint_timeout = 30min
fsync = off
synchronous_commit = off
CONF
as_pg "$PG_BIN/pg_ctl" -D "$TMP/data" -l "$TMP/log" -w start >/dev/null
as_pg "$PG_BIN/pgbench" -h "$TMP" -p "$PORT" -U postgres -i -s "$SCALE" -q postgres >/dev/null 2>&1
as_pg "$PG_BIN/psql" -h "$TMP" -p "$PORT" -U postgres -qc CHECKPOINT postgres
as_pg "$PG_BIN/pgbench" -h "$TMP" -p "$PORT" -U postgres -c 2 -j 1 -T "$SECONDS_RUN" postgres >/dev/null 2>&1
as_pg "$PG_BIN/psql" -h "$TMP" -p "$PORT" -U postgres -qAtc "SELECT pg_switch_wal()" postgres >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$TMP/data" -m fast stop >/dev/null
rm -rf "$OUT"; mkdir -p "$OUT"
cp "$TMP"/data/pg_wal/0000000* "$OUT"/
du -sh "$OUT"; ls "$OUT" | head -1; ls "$OUT" | tail -1
