#!/usr/bin/env bash
# The time `rewind-guard` adds to a rejoin, for a lost range of $MB MB (BENCHMARKS.md):
#   - a primary and a pg_basebackup standby; the standby is cut off and the primary writes
#     about $MB MB of WAL in committed 1,000-row batches (1 kB rows), then stops cleanly;
#   - the standby is promoted and keeps running (it is the rewind source);
#   - the guard runs as Patroni would run it, with /bin/true standing in for pg_rewind so the
#     former primary stays diverged and the run can be repeated ($RUNS times, a fresh evidence
#     root each time); /usr/bin/time -v gives the wall time, CPU and peak memory; the guard's
#     log lines give the split (copy with its hashing and fsync, when pg_rewind started, the
#     analysis and its phases); each bundle is checked with `sha256sum -c`.
#   - pg_rewind (here /bin/true) runs in the guard's place as soon as the copy is made; the
#     analysis goes on in a detached process of the guard, so the time added to the rejoin is
#     the guard's wall time (the copy); the script then waits for the detached analysis to
#     log its end in <root>/guard.log and reports how long it took (its CPU and memory are
#     not in /usr/bin/time's figures: they are the detached process's).
# Usage: MB=16 RUNS=3 benches/guard_bench.sh   (as root; servers run as postgres)
#        BUDGET=300s MB=1024 RUNS=1 benches/guard_bench.sh   (the whole analysis, past the default 30 s)
set -euo pipefail
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
MB=${MB:-16}
RUNS=${RUNS:-3}
BUDGET=${BUDGET:-30s}
OUT=${OUT:-/tmp/fv-guardbench}
TOOL=${TOOL:-$(cd "$(dirname "$0")/.." && pwd)/target/release/failover-verify}
PORT=${PORT:-$(( 20000 + RANDOM % 20000 ))}
NEW_PORT=$(( PORT + 1 ))
as_pg() { runuser -u postgres -- "$@"; }
rm -rf "$OUT"; mkdir -p "$OUT"; chown postgres: "$OUT"
SOCK="$OUT"; P="$OUT/former"; S="$OUT/new"
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
wal_keep_size = 4GB
max_wal_size = 8GB
checkpoint_timeout = 30min
fsync = off
synchronous_commit = off
wal_log_hints = on
CONF
as_pg "$PG_BIN/pg_ctl" -D "$P" -l "$OUT/former.log" -w start >/dev/null
psql_p() { as_pg "$PG_BIN/psql" -h "$SOCK" -p "$PORT" -U postgres -qAtX "$@" postgres; }
psql_p -c "CREATE TABLE bench_lost (id bigint, pad text)" -c CHECKPOINT
as_pg "$PG_BIN/pg_basebackup" -h "$SOCK" -p "$PORT" -U postgres -D "$S" -R -X stream -c fast
echo "port = $NEW_PORT" >> "$S/postgresql.conf"
as_pg "$PG_BIN/pg_ctl" -D "$S" -l "$OUT/new.log" -w start >/dev/null
TARGET=$(psql_p -c "SELECT pg_current_wal_lsn()")
until [ "$(as_pg "$PG_BIN/psql" -h "$SOCK" -p "$NEW_PORT" -U postgres -qAtX -c "SELECT pg_last_wal_replay_lsn() >= '$TARGET'" postgres)" = t ]; do sleep 0.2; done
as_pg "$PG_BIN/pg_ctl" -D "$S" -m fast stop >/dev/null
# ~1.1 kB of WAL per row: $MB MB in 1,000-row commits.
BATCHES=$(( MB * 1000 / 1100 ))
[ "$BATCHES" -ge 1 ] || BATCHES=1
psql_p <<SQL
CREATE PROCEDURE fv_fill(batches int) LANGUAGE plpgsql AS \$\$
BEGIN
  FOR b IN 1..batches LOOP
    INSERT INTO bench_lost SELECT b * 1000 + g, repeat(md5(g::text), 31) FROM generate_series(1, 1000) g;
    COMMIT;
  END LOOP;
END \$\$;
CALL fv_fill($BATCHES);
SQL
START_LSN=$TARGET; END_LSN=$(psql_p -c "SELECT pg_current_wal_lsn()")
echo "lost WAL: $(psql_p -c "SELECT pg_size_pretty('$END_LSN'::pg_lsn - '$START_LSN'::pg_lsn)") in $BATCHES commits"
as_pg "$PG_BIN/pg_ctl" -D "$P" -m fast stop >/dev/null
sed -i '/primary_conninfo/d' "$S/postgresql.auto.conf"
as_pg "$PG_BIN/pg_ctl" -D "$S" -l "$OUT/new.log" -w start >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$S" -w promote >/dev/null
as_pg "$PG_BIN/psql" -h "$SOCK" -p "$NEW_PORT" -U postgres -qAtX -c CHECKPOINT postgres
for i in $(seq "$RUNS"); do
  EV="$OUT/evidence-$i"
  as_pg /usr/bin/time -v -o "$OUT/time-$i" "$TOOL" rewind-guard --pg-rewind /bin/true \
    --evidence-root "$EV" --budget "$BUDGET" -- -D "$P" \
    --source-server "host=$SOCK port=$NEW_PORT user=postgres dbname=postgres" 2> "$OUT/guard-$i.log"
  # The detached analysis logs its end in the evidence root's guard.log.
  for _ in $(seq 1200); do
    grep -qE 'evidence bundle .* sealed|accounting failed|did not finish within' "$EV/guard.log" 2>/dev/null && break
    sleep 0.5
  done
  cat "$EV/guard.log" >> "$OUT/guard-$i.log" 2>/dev/null || true
  wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$OUT/time-$i")
  cpu=$(awk -F': ' '/User time|System time/ {s += $2} END {printf "%.2f", s}' "$OUT/time-$i")
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$OUT/time-$i")
  copy=$(sed -n 's/.*copied \([0-9]*\) segments (\([^)]*\)).* in \([0-9.]*\) s (.*hashing \([0-9.]*\) s; final fsync \([0-9.]*\) s)$/\1 segments, \2, copy \3 s (hash \4 s, fsync \5 s)/p' "$OUT/guard-$i.log")
  started=$(sed -n 's/.* +\([0-9.]*\)s\]: running .* now.*/pg_rewind started at +\1 s/p' "$OUT/guard-$i.log")
  sealed=$(sed -n -e 's/.*sealed in \([0-9.]*\) s: \(.*\)$/analysis+bundle \1 s: \2/p' \
    -e 's/.*\(did not finish within the budget of [0-9.]* s\).*/analysis \1/p' "$OUT/guard-$i.log")
  phases=$(sed -n 's/.*analysis phases: //p' "$OUT/guard-$i.log")
  echo "run $i: wall $wall, CPU ${cpu} s, peak RSS ${rss} kB; $copy; $started; $sealed; phases: $phases"
  after=$(sed -n 's/.*pg_rewind exited with code \([0-9]*\) after \([0-9.]*\) s; the accounting ended \([0-9.]*\) s after it/pg_rewind exit \1 at +\2 s, accounting done \3 s later/p' "$OUT/guard-$i.log")
  [ -z "$after" ] || echo "run $i: $after"
  if ls -d "$EV"/*-end-*[0-9A-F]/ >/dev/null 2>&1; then
    (cd "$EV"/*-end-*[0-9A-F]/ && sha256sum -c --quiet SHA256SUMS && echo "run $i: sha256sum -c SHA256SUMS: OK") \
      || echo "run $i: SHA256SUMS DOES NOT CHECK"
  else
    echo "run $i: no sealed bundle (the raw copy stays)"
  fi
  rm -rf "$EV"
done
