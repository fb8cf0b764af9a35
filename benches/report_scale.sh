#!/usr/bin/env bash
# "Report at scale" benchmark (BENCHMARKS.md): times the release binary end to end on the
# lost WAL made by benches/gen_loss.sh, against `pg_waldump --stats=record` on the same files
# and range, alternating, $RUNS rounds; prints one line per run with wall seconds, CPU seconds
# (user + system), peak RSS (from /usr/bin/time -v) and the report's size.
#   cargo build --release && bash benches/gen_loss.sh && bash benches/report_scale.sh
set -euo pipefail
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
OUT=${OUT:-/tmp/fv-lossbench}
RUNS=${RUNS:-3}
BIN=${BIN:-target/release/failover-verify}
FORMATS=${FORMATS:-text json markdown csv html prometheus}
# shellcheck disable=SC1091
. "$OUT/env"
WAL="$OUT/wal"
RES=$(mktemp -d /tmp/fv-reportscale.XXXXXX)
as_pg() { runuser -u postgres -- "$@"; }
as_pg "$PG_BIN/pg_ctl" -D "$OUT/new" -l "$OUT/new.log" -w start >/dev/null
trap 'as_pg "$PG_BIN/pg_ctl" -D "$OUT/new" -m fast stop >/dev/null 2>&1 || true; rm -rf "$RES"' EXIT
NEW="host=$SOCK port=$NEW_PORT user=postgres dbname=postgres"

# One measured command: label, then the command; stdout to $RES/out.
measure() {
  local label=$1; shift
  /usr/bin/time -v -o "$RES/time" "$@" > "$RES/out" 2> "$RES/err" || true
  local wall cpu rss size
  cpu=$(awk -F': ' '/User time|System time/ {s += $2} END {print s}' "$RES/time")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$RES/time" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$RES/time")
  size=$(stat -c %s "$RES/out")
  printf '%-36s %7.2f s %6.2f CPU-s %7.1f MB %10d bytes\n' "$label" "$wall" "$cpu" "$(echo "$rss / 1024" | bc -l)" "$size"
}

echo "WAL: $(du -sh "$WAL" | cut -f1), switchpoint $SWITCHPOINT, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
cat "$WAL"/0000000* > /dev/null  # page cache, for every contestant alike
for run in $(seq "$RUNS"); do
  echo "--- run $run (load $(cut -d' ' -f1-3 /proc/loadavg))"
  measure "pg_waldump --stats=record" "$PG_BIN/pg_waldump" -p "$WAL" -t 1 -s "$SWITCHPOINT" --stats=record
  for f in $FORMATS; do
    measure "wal --format $f" "$BIN" wal --dir "$WAL" --timeline 1 --from "$SWITCHPOINT" --format "$f"
    [ "$f" = json ] && grep -o '"lost_commits": [0-9]*' "$RES/out" | head -1
  done
  measure "wal --format json --lost-xids-file" "$BIN" wal --dir "$WAL" --timeline 1 --from "$SWITCHPOINT" --format json --lost-xids-file "$RES/lost.csv"
  echo "  list: $(stat -c %s "$RES/lost.csv") bytes, $(( $(wc -l < "$RES/lost.csv") - 1 )) rows"
  measure "pg_waldump --stats=record" "$PG_BIN/pg_waldump" -p "$WAL" -t 1 -s "$SWITCHPOINT" --stats=record
  for f in text json; do
    measure "compare --former-wal-dir ($f)" "$BIN" compare --new-primary "$NEW" --former-wal-dir "$WAL" --no-checks --format "$f"
  done
  rm -rf "$RES/export"
  measure "compare ... --export-dir (json)" "$BIN" compare --new-primary "$NEW" --former-wal-dir "$WAL" --no-checks --format json --export-dir "$RES/export"
done
