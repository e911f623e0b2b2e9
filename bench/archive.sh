#!/usr/bin/env bash
# Archive benchmark: bulk import and search of a generated mailing-list archive, concord
# against notmuch on the same machine and the same messages.
#
#   bench/archive.sh              # 100000 messages
#   bench/archive.sh 20000        # or N=20000 bench/archive.sh
#   SKIP_CONCORD=1 bench/archive.sh 2000    # only the corpus and the notmuch reference
#
# Steps:
#   1. installs what is missing (notmuch, GNU time, python3) from Debian's packages;
#   2. generates N messages (fixed seed) with shared/bench/gen_corpus.py as an mbox, a Maildir
#      and the generator's 20 search queries in the work dir (reused when it already holds a
#      corpus of the same N, seed and generator);
#   3. `cargo build --release`, then `concord --config <cfg> import --list bench <mbox>` into a
#      fresh SQLite database under /usr/bin/time -v: wall, msg/s, CPU, peak RSS, database
#      bytes (incl. the -wal file) per message;
#   4. the 20 queries (rewritten into concord's syntax, see bench/archive_stats.py) with
#      `concord --config <cfg> search --limit 50 -- <query>`, one process per query, one
#      warm-up pass then ROUNDS timed passes: median and p95 latency over all samples;
#   5. the same for notmuch: `notmuch new` over the Maildir with a fresh NOTMUCH_CONFIG
#      (wall, msg/s, CPU, peak RSS, index bytes per message) and `notmuch search --limit=50`.
#
# Environment:
#   N (100000; the first argument wins)  SEED (1)  ROUNDS (5)
#   GEN_CORPUS   path of gen_corpus.py (default: $(dirname "$0")/../../shared/bench/gen_corpus.py)
#   BENCH_WORK   work dir (default: target/bench-archive in the project)
#   SKIP_CONCORD=1, SKIP_NOTMUCH=1, SKIP_BUILD=1 (use the existing target/release/concord),
#   CONCORD_BIN  binary to measure (default target/release/concord)
#   QUIET_MAX    before each measurement wait at most this many seconds (default 120; 0 = do
#                not wait) for the host to be nearly idle; the busy share seen is reported
#   PYTHON       python3 interpreter for the generator and the helper (default python3)
# Output: `name value unit` lines on stdout (also in $BENCH_WORK/results.txt); progress and
# tool output go to stderr and to log files in the work dir.
set -euo pipefail

case "${1:-}" in -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
N=${1:-${N:-100000}}
SEED=${SEED:-1}
ROUNDS=${ROUNDS:-5}
QUIET_MAX=${QUIET_MAX:-120}
GEN_CORPUS=${GEN_CORPUS:-$(dirname "$0")/../../shared/bench/gen_corpus.py}
PYTHON=${PYTHON:-python3}
CONCORD_BIN=${CONCORD_BIN:-$ROOT/target/release/concord}
STATS=$HERE/archive_stats.py

case $N in ''|*[!0-9]*) echo "archive.sh: N must be a positive integer, got '$N'" >&2; exit 2 ;; esac
[ "$N" -gt 0 ] || { echo "archive.sh: N must be > 0" >&2; exit 2; }

log() { printf '# %s\n' "$*" >&2; }

# ------------------------------------------------------------------ tools
apt_updated=
need_pkgs() {  # install the given Debian packages (apt-get update once per run)
  [ $# -eq 0 ] && return 0
  log "installing: $*"
  if [ -z "$apt_updated" ]; then apt-get update -qq >&2; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2
}
missing=()
[ -x /usr/bin/time ] || missing+=(time)
command -v "$PYTHON" > /dev/null || { missing+=(python3); PYTHON=python3; }
[ -n "${SKIP_NOTMUCH:-}" ] || command -v notmuch > /dev/null || missing+=(notmuch)
need_pkgs "${missing[@]+"${missing[@]}"}"
[ -f "$GEN_CORPUS" ] || { echo "archive.sh: generator not found: $GEN_CORPUS (set GEN_CORPUS=)" >&2; exit 1; }

# ------------------------------------------------------------------ helpers
mkdir -p "${BENCH_WORK:-$ROOT/target/bench-archive}"
WORK=$(cd "${BENCH_WORK:-$ROOT/target/bench-archive}" && pwd)
RESULTS=$WORK/results.txt
: > "$RESULTS"

res() {  # name value unit
  printf '%s %s %s\n' "$1" "$2" "$3" | tee -a "$RESULTS"
}
fdiv() { awk -v a="$1" -v b="$2" -v f="${3:-%.1f}" 'BEGIN{ if (b > 0) printf f, a / b; else print "nan" }'; }
now() { date +%s.%N; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN{ printf "%.3f", a - b }'; }
# GNU time -v output -> fields
tv_rss_mb() { awk -F': ' '/Maximum resident set size/{ printf "%.1f", $2 / 1024 }' "$1"; }
tv_cpu() { awk -F': ' '/User time/{ u = $2 } /System time/{ s = $2 } END{ printf "%.2f", u + s }' "$1"; }
# CPU jiffies spent by the whole host: shows whether something else ran during a measurement
busy_jiffies() { awk '/^cpu /{ print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
jiffies_s() { awk -v a="$1" -v b="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN{ printf "%.2f", (b - a) / hz }'; }
wait_quiet() {  # wait (at most QUIET_MAX s) until the host is <= 15% busy; prints the busy %
  local t0 b0 b1 pct
  t0=$(date +%s)
  while :; do
    b0=$(busy_jiffies); sleep 2; b1=$(busy_jiffies)
    pct=$(awk -v a="$b0" -v b="$b1" -v hz="$(getconf CLK_TCK)" -v n="$(nproc)" \
      'BEGIN{ printf "%.0f", 100 * (b - a) / hz / 2 / n }')
    [ "$pct" -le 15 ] && break
    if [ $(( $(date +%s) - t0 )) -ge "$QUIET_MAX" ]; then
      [ "$QUIET_MAX" -gt 0 ] && log "host still ${pct}% busy after ${QUIET_MAX}s; measuring anyway"
      break
    fi
  done
  echo "$pct"
}
# run a command under GNU time -v; sets WALL (s), CPU (s), RSS (MB), HOSTCPU (s, whole host)
timed() {  # timefile logfile cmd...
  local tf=$1 lf=$2 t0 t1 b0 b1 rc=0
  shift 2
  sync
  b0=$(busy_jiffies); t0=$(now)
  /usr/bin/time -v -o "$tf" "$@" > "$lf" 2>&1 || rc=$?
  t1=$(now); b1=$(busy_jiffies)
  if [ $rc -ne 0 ]; then
    echo "archive.sh: failed ($rc): $*" >&2
    tail -n 20 "$lf" >&2
    exit 1
  fi
  WALL=$(fsub "$t1" "$t0"); CPU=$(tv_cpu "$tf"); RSS=$(tv_rss_mb "$tf"); HOSTCPU=$(jiffies_s "$b0" "$b1")
}

res machine_nproc "$(nproc)" cores
res machine_mem_total "$(awk '/MemTotal/{ printf "%.1f", $2 / 1048576 }' /proc/meminfo)" GiB
res machine_loadavg_1m_at_start "$(cut -d' ' -f1 /proc/loadavg)" load

# ------------------------------------------------------------------ corpus
MBOX=$WORK/corpus.mbox
MAILDIR=$WORK/maildir
QUERIES=$WORK/queries.txt
STAMP=$WORK/corpus.stamp
want="n=$N seed=$SEED source=synthetic gen=$(sha256sum < "$GEN_CORPUS" | cut -c1-16)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -f "$MBOX" ] && [ -d "$MAILDIR/cur" ] && [ -s "$QUERIES" ]; then
  log "reusing the corpus in $WORK ($want)"
else
  log "generating $N messages into $WORK"
  rm -rf "$STAMP" "$MBOX" "$MAILDIR" "$QUERIES" "$WORK/truth.tsv" "$WORK/gen.txt"
  "$PYTHON" "$GEN_CORPUS" --count "$N" --seed "$SEED" --source synthetic --mbox "$MBOX" \
    --maildir "$MAILDIR" --queries "$QUERIES" --truth "$WORK/truth.tsv" > "$WORK/gen.txt"
  echo "$want" > "$STAMP"
fi
while read -r a b c; do
  case $a in gen_messages|gen_threads_intended|gen_bytes|gen_seconds) res "corpus_${a#gen_}" "$b" "$c" ;; esac
done < "$WORK/gen.txt"
res corpus_mbox_bytes "$(stat -c %s "$MBOX")" bytes
res corpus_maildir_files "$(find "$MAILDIR/cur" -type f | wc -l)" count
"$PYTHON" "$STATS" translate "$QUERIES" "$WORK/queries.concord.txt" | while read -r a b c; do res "corpus_$a" "$b" "$c"; done

CONCORD_RATE= NOTMUCH_RATE= CONCORD_MED= NOTMUCH_MED=

# ------------------------------------------------------------------ concord
if [ -z "${SKIP_CONCORD:-}" ]; then
  if [ -z "${SKIP_BUILD:-}" ]; then
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release) >&2
  fi
  [ -x "$CONCORD_BIN" ] || { echo "archive.sh: no binary at $CONCORD_BIN" >&2; exit 1; }
  CFG=$WORK/concord.toml
  DB=$WORK/concord.db
  printf '[database]\nurl = "sqlite://%s"\n' "$DB" > "$CFG"
  rm -f "$DB" "$DB-wal" "$DB-shm" "$DB-journal"

  res concord_import_host_busy_before "$(wait_quiet)" %
  log "concord import ($N messages)"
  timed "$WORK/concord-import.time" "$WORK/concord-import.log" \
    "$CONCORD_BIN" --config "$CFG" import --list bench "$MBOX"
  CONCORD_RATE=$(fdiv "$N" "$WALL")
  res concord_import_wall "$WALL" s
  res concord_import_rate "$CONCORD_RATE" msg/s
  res concord_import_cpu "$CPU" s
  res concord_import_host_cpu "$HOSTCPU" s
  res concord_import_peak_rss "$RSS" MB
  [ -f "$DB" ] || { echo "archive.sh: import succeeded but $DB does not exist" >&2; exit 1; }
  dbb=$(stat -c %s "$DB")
  [ -f "$DB-wal" ] && dbb=$((dbb + $(stat -c %s "$DB-wal")))
  res concord_db_bytes "$dbb" bytes
  res concord_db_per_msg "$(fdiv "$dbb" "$((N * 1024))" %.2f)" KB

  res concord_search_host_busy_before "$(wait_quiet)" %
  log "concord search: 20 queries x $ROUNDS rounds"
  "$PYTHON" "$STATS" latency concord "$ROUNDS" "$WORK/queries.concord.txt" "$WORK/concord-latency.tsv" \
    "$CONCORD_BIN" --config "$CFG" search --limit 50 -- {} > "$WORK/concord-latency.res"
  while read -r a b c; do res "$a" "$b" "$c"; done < "$WORK/concord-latency.res"
  CONCORD_MED=$(awk '$1 == "concord_search_median" { print $2 }' "$WORK/concord-latency.res")
fi

# ------------------------------------------------------------------ notmuch
if [ -z "${SKIP_NOTMUCH:-}" ]; then
  export NOTMUCH_CONFIG=$WORK/notmuch.cfg
  unset NOTMUCH_PROFILE NOTMUCH_DATABASE
  cat > "$NOTMUCH_CONFIG" <<EOF
[database]
path=$MAILDIR
[user]
name=Bench
primary_email=bench@example.org
[new]
tags=unread;inbox;
ignore=
[search]
exclude_tags=
[maildir]
synchronize_flags=false
EOF
  rm -rf "$MAILDIR/.notmuch"
  res notmuch_version "$(notmuch --version | awk '{ print $2 }')" version

  res notmuch_import_host_busy_before "$(wait_quiet)" %
  log "notmuch new ($N messages)"
  timed "$WORK/notmuch-new.time" "$WORK/notmuch-new.log" notmuch new --quiet
  NOTMUCH_RATE=$(fdiv "$N" "$WALL")
  res notmuch_import_wall "$WALL" s
  res notmuch_import_rate "$NOTMUCH_RATE" msg/s
  res notmuch_import_cpu "$CPU" s
  res notmuch_import_host_cpu "$HOSTCPU" s
  res notmuch_import_peak_rss "$RSS" MB
  nmb=$(du -sb "$MAILDIR/.notmuch" | cut -f1)
  res notmuch_db_bytes "$nmb" bytes
  res notmuch_db_per_msg "$(fdiv "$nmb" "$((N * 1024))" %.2f)" KB
  res notmuch_messages "$(notmuch count '*')" count
  res notmuch_threads "$(notmuch count --output=threads '*')" count

  res notmuch_search_host_busy_before "$(wait_quiet)" %
  log "notmuch search: 20 queries x $ROUNDS rounds"
  "$PYTHON" "$STATS" latency notmuch "$ROUNDS" "$QUERIES" "$WORK/notmuch-latency.tsv" \
    notmuch search --limit=50 {} > "$WORK/notmuch-latency.res"
  while read -r a b c; do res "$a" "$b" "$c"; done < "$WORK/notmuch-latency.res"
  NOTMUCH_MED=$(awk '$1 == "notmuch_search_median" { print $2 }' "$WORK/notmuch-latency.res")
fi

# ------------------------------------------------------------------ ratios
if [ -n "$CONCORD_MED" ] && [ -n "$NOTMUCH_MED" ]; then
  res search_speedup_vs_notmuch "$(fdiv "$NOTMUCH_MED" "$CONCORD_MED" %.2f)" x
fi
if [ -n "$CONCORD_RATE" ] && [ -n "$NOTMUCH_RATE" ]; then
  res import_speedup_vs_notmuch "$(fdiv "$CONCORD_RATE" "$NOTMUCH_RATE" %.2f)" x
fi
log "results also in $RESULTS; per-query latencies in $WORK/*-latency.tsv"
