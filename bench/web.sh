#!/usr/bin/env bash
# Web benchmark: server time of the web interface's pages over a generated archive of N
# messages (default 100,000), read from the `Server-Timing: app;dur=MS` header every
# answer carries (time spent in concord, not in the network or the client).
#
#   bench/web.sh              # 100000 messages
#   bench/web.sh 20000        # or N=20000 bench/web.sh
#
# Steps:
#   1. the corpus: the mbox and queries bench/archive.sh generated (target/bench-archive),
#      when it holds N messages; otherwise generates them the same way (fixed seed) with
#      ../shared/bench/gen_corpus.py into the work dir;
#   2. `cargo build --release`, a fresh database, `concord import --list bench` (once per
#      corpus: the database is kept in the work dir and reused);
#   3. `concord serve` with only the web server (127.0.0.1, a free port); the archive is
#      public to visitors (`archive_access = "public"`; a second, members-only, list is
#      configured but holds no mail); searches run as an anonymous page and as API calls
#      with a member's token;
#   4. ROUNDS passes over: the list page, 12 month pages, 40 thread pages (the 20 largest
#      threads and 20 others), 40 message pages, the 20 generator queries as anonymous page
#      searches and as API searches of a member; median, p95 and max per kind.
#
# Environment: N, SEED (1), ROUNDS (3), BENCH_WORK (target/bench-web), SKIP_BUILD=1,
#   CONCORD_BIN (target/release/concord), PYTHON (python3), GEN_CORPUS.
# Output: `name value unit` lines on stdout (also in $BENCH_WORK/results.txt).
set -euo pipefail

case "${1:-}" in -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
N=${1:-${N:-100000}}
SEED=${SEED:-1}
ROUNDS=${ROUNDS:-3}
PYTHON=${PYTHON:-python3}
CONCORD_BIN=${CONCORD_BIN:-$ROOT/target/release/concord}
GEN_CORPUS=${GEN_CORPUS:-$ROOT/../shared/bench/gen_corpus.py}
case $N in ''|*[!0-9]*) echo "web.sh: N must be a positive integer, got '$N'" >&2; exit 2 ;; esac

log() { printf '# %s\n' "$*" >&2; }
command -v "$PYTHON" > /dev/null || { log "installing python3"; apt-get update -qq >&2; DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3 >&2; }

mkdir -p "${BENCH_WORK:-$ROOT/target/bench-web}"
WORK=$(cd "${BENCH_WORK:-$ROOT/target/bench-web}" && pwd)
RESULTS=$WORK/results.txt
: > "$RESULTS"

# ------------------------------------------------------------------ corpus
ARCH=$ROOT/target/bench-archive
MBOX=$WORK/corpus.mbox
QUERIES=$WORK/queries.concord.txt
if [ -f "$ARCH/corpus.stamp" ] && grep -q "^n=$N seed=$SEED " "$ARCH/corpus.stamp" && [ -s "$ARCH/queries.concord.txt" ]; then
  log "reusing bench/archive.sh's corpus ($ARCH)"
  MBOX=$ARCH/corpus.mbox
  QUERIES=$ARCH/queries.concord.txt
elif [ ! -f "$MBOX" ] || [ "$(cat "$WORK/corpus.stamp" 2>/dev/null)" != "n=$N seed=$SEED" ]; then
  [ -f "$GEN_CORPUS" ] || { echo "web.sh: generator not found: $GEN_CORPUS" >&2; exit 1; }
  log "generating $N messages"
  "$PYTHON" "$GEN_CORPUS" --count "$N" --seed "$SEED" --source synthetic --mbox "$MBOX" \
    --queries "$WORK/queries.txt" --truth "$WORK/truth.tsv" > "$WORK/gen.txt"
  "$PYTHON" "$HERE/archive_stats.py" translate "$WORK/queries.txt" "$QUERIES" > /dev/null
  echo "n=$N seed=$SEED" > "$WORK/corpus.stamp"
fi

# ------------------------------------------------------------------ build, import
if [ -z "${SKIP_BUILD:-}" ]; then
  log "cargo build --release"
  (cd "$ROOT" && cargo build --release) >&2
fi
[ -x "$CONCORD_BIN" ] || { echo "web.sh: no binary at $CONCORD_BIN" >&2; exit 1; }
DB=$WORK/concord.db
PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
CFG=$WORK/concord.toml
cat > "$CFG" <<EOF
[database]
url = "sqlite://$DB"
[web]
listen = "127.0.0.1:$PORT"
archive_access = "public"
[inbound]
[[list]]
name = "members-only"
address = "members-only@lists.example.org"
archive = "members"
EOF
if [ "$(cat "$WORK/db.stamp" 2>/dev/null)" != "$(stat -c %s "$MBOX") $N" ]; then
  rm -f "$DB" "$DB-wal" "$DB-shm"
  log "importing $N messages"
  "$CONCORD_BIN" --config "$CFG" import --list bench "$MBOX" >&2
  echo "$(stat -c %s "$MBOX") $N" > "$WORK/db.stamp"
fi
"$CONCORD_BIN" --config "$CFG" members add members-only bench@example.org > /dev/null
TOKEN=$("$CONCORD_BIN" --config "$CFG" web token create bench@example.org 2> /dev/null)

# ------------------------------------------------------------------ serve and measure
log "concord serve (web on 127.0.0.1:$PORT)"
"$CONCORD_BIN" --config "$CFG" serve > "$WORK/serve.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2> /dev/null || true; wait "$SERVER" 2> /dev/null || true' EXIT

"$PYTHON" - "$PORT" "$DB" "$QUERIES" "$ROUNDS" "$TOKEN" <<'PY' | tee -a "$RESULTS"
import json, random, sqlite3, statistics, sys, time, urllib.parse, urllib.request
port, db, queries, rounds, token = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
base = f"http://127.0.0.1:{port}"
for _ in range(300):
    try:
        urllib.request.urlopen(base + "/static/style.css", timeout=2).read()
        break
    except Exception:
        time.sleep(0.1)
else:
    sys.exit("web.sh: the server did not answer")
con = sqlite3.connect(db)
big = [r[0] for r in con.execute("SELECT id FROM threads ORDER BY message_count DESC LIMIT 20")]
rnd = random.Random(1)
ids = [r[0] for r in con.execute("SELECT id FROM threads")]
others = rnd.sample(ids, min(20, len(ids)))
mids = [r[0] for r in con.execute("SELECT message_id FROM messages WHERE quarantine IS NULL")]
msgs = rnd.sample(mids, min(40, len(mids)))
months = [r[0] for r in con.execute(
    "SELECT DISTINCT strftime('%Y-%m', date, 'unixepoch') FROM messages WHERE date IS NOT NULL ORDER BY 1")]
months = months[:: max(1, len(months) // 12)][:12]
sizes = dict(con.execute("SELECT id, message_count FROM threads WHERE id IN (%s)" % ",".join(map(str, big))))
con.close()
qs = [q.strip() for q in open(queries) if q.strip()]
q = urllib.parse.quote
def esc(m):
    return q(m, safe="@+=$!")
kinds = {
    "list": ["/list/bench/"],
    "month": [f"/list/bench/month/{m}" for m in months],
    "thread": [f"/list/bench/thread/{t}" for t in big + others],
    "message": [f"/list/bench/message/{esc(m)}" for m in msgs],
    "search_page_anonymous": [f"/search?q={q(x)}" for x in qs],
    "search_api_member": [f"/api/v1/search?limit=20&q={q(x)}" for x in qs],
}
def timed(path, auth):
    req = urllib.request.Request(base + path)
    if auth:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=60) as r:
        r.read()
        st = r.headers.get("Server-Timing", "")
        return float(st.split("dur=")[1]) if "dur=" in st else float("nan"), r.status
samples = {k: [] for k in kinds}
errors = 0
for rnd_ in range(rounds + 1):  # the first pass warms caches and is not counted
    for k, paths in kinds.items():
        for p in paths:
            try:
                ms, _ = timed(p, k.endswith("member"))
            except Exception as e:
                errors += 1
                print(f"# {p}: {e}", file=sys.stderr)
                continue
            if rnd_ > 0:
                samples[k].append(ms)
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]
print(f"web_largest_thread_messages {max(sizes.values()) if sizes else 0} count")
for k, v in samples.items():
    if not v:
        continue
    print(f"web_{k}_median {statistics.median(v):.2f} ms")
    print(f"web_{k}_p95 {pct(v, 95):.2f} ms")
    print(f"web_{k}_max {max(v):.2f} ms")
    print(f"web_{k}_samples {len(v)} count")
print(f"web_errors {errors} count")
PY
log "results also in $RESULTS"
