#!/usr/bin/env bash
# Makes a forced promotion that lost ~1 GB of WAL holding ~2 million commits, for the
# "Report at scale" benchmark (benches/report_scale.sh, BENCHMARKS.md):
#   - a primary with pgbench tables (scale $SCALE), and a standby made by pg_basebackup;
#   - the standby stops; the primary then commits $CLIENTS x $PER_CLIENT pgbench "simple
#     update" transactions (pgbench -N: UPDATE pgbench_accounts + INSERT INTO pgbench_history),
#     run server-side by a procedure that COMMITs each one (much faster to generate than
#     client round trips, the same WAL per transaction);
#   - the primary stops; the standby is promoted (timeline 2): every commit above is lost.
# Leaves in $OUT: wal/ (a copy of the former primary's pg_wal), new/ (the promoted node's data
# directory, stopped), and env (SWITCHPOINT, NEW_PORT, SOCK for report_scale.sh).
set -euo pipefail
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
OUT=${OUT:-/tmp/fv-lossbench}
SCALE=${SCALE:-25}
CLIENTS=${CLIENTS:-2}
PER_CLIENT=${PER_CLIENT:-1000000}
PORT=${PORT:-$(( 20000 + RANDOM % 20000 ))}
NEW_PORT=$(( PORT + 1 ))
as_pg() { runuser -u postgres -- "$@"; }
rm -rf "$OUT"; mkdir -p "$OUT"; chown postgres: "$OUT"
SOCK="$OUT"
P="$OUT/former"; S="$OUT/new"
cleanup() {
  as_pg "$PG_BIN/pg_ctl" -D "$P" -m immediate stop >/dev/null 2>&1 || true
  as_pg "$PG_BIN/pg_ctl" -D "$S" -m fast stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
as_pg "$PG_BIN/initdb" -D "$P" -U postgres -A trust >/dev/null
cat >> "$P/postgresql.conf" <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$SOCK'
wal_keep_size = 8GB
max_wal_size = 8GB
checkpoint_timeout = 30min
fsync = off
synchronous_commit = off
CONF
as_pg "$PG_BIN/pg_ctl" -D "$P" -l "$OUT/former.log" -w start >/dev/null
psql_p() { as_pg "$PG_BIN/psql" -h "$SOCK" -p "$PORT" -U postgres -qAtX "$@" postgres; }
as_pg "$PG_BIN/pgbench" -h "$SOCK" -p "$PORT" -U postgres -i -s "$SCALE" -q postgres >/dev/null 2>&1
psql_p -c CHECKPOINT
as_pg "$PG_BIN/pg_basebackup" -h "$SOCK" -p "$PORT" -U postgres -D "$S" -R -X stream -c fast
cat >> "$S/postgresql.conf" <<CONF
port = $NEW_PORT
CONF
as_pg "$PG_BIN/pg_ctl" -D "$S" -l "$OUT/new.log" -w start >/dev/null
# Let the standby replay everything so far, then cut it off.
TARGET=$(psql_p -c "SELECT pg_current_wal_lsn()")
until [ "$(as_pg "$PG_BIN/psql" -h "$SOCK" -p "$NEW_PORT" -U postgres -qAtX -c "SELECT pg_last_wal_replay_lsn() >= '$TARGET'" postgres)" = t ]; do sleep 0.2; done
as_pg "$PG_BIN/pg_ctl" -D "$S" -m fast stop >/dev/null

psql_p <<'SQL'
CREATE PROCEDURE fv_simple_update(n int, accounts int) LANGUAGE plpgsql AS $$
DECLARE a int; d int;
BEGIN
  FOR i IN 1..n LOOP
    a := 1 + floor(random() * accounts)::int;
    d := floor(random() * 10001)::int - 5000;
    UPDATE pgbench_accounts SET abalance = abalance + d WHERE aid = a;
    INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, a, d, now());
    COMMIT;
  END LOOP;
END $$;
SQL
START=$(date +%s)
for _ in $(seq "$CLIENTS"); do
  psql_p -c "CALL fv_simple_update($PER_CLIENT, $(( SCALE * 100000 )))" &
done
wait
echo "lost workload: $(( $(date +%s) - START )) s"
as_pg "$PG_BIN/pg_ctl" -D "$P" -m fast stop >/dev/null

# Promote the standby with no upstream: timeline 2 branches where it stopped replaying.
sed -i '/primary_conninfo/d' "$S/postgresql.auto.conf"
as_pg "$PG_BIN/pg_ctl" -D "$S" -l "$OUT/new.log" -w start >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$S" -w promote >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$S" -m fast stop >/dev/null
SWITCHPOINT=$(cut -f2 "$S/pg_wal/00000002.history" | head -1)
mkdir -p "$OUT/wal"
cp "$P"/pg_wal/0000000* "$OUT/wal/"
rm -rf "$P"
cat > "$OUT/env" <<ENV
SWITCHPOINT=$SWITCHPOINT
NEW_PORT=$NEW_PORT
SOCK=$SOCK
ENV
trap - EXIT
du -sh "$OUT/wal"; cat "$OUT/env"
