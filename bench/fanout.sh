#!/usr/bin/env bash
# List fan-out benchmark: ONE post to a list of N members, handed to `concord serve` over
# LMTP and delivered over SMTP into Postfix's smtp-sink on loopback; then (unless
# SKIP_PEERS=1) the same measurement for GNU Mailman 3 and the smtp-source "ceiling" with
# ../shared/bench/peer_fanout.sh, in the same run, and the ratio.
#
#   bench/fanout.sh                 # N = 10000 members, 3 runs per layout, then the peers
#   bench/fanout.sh 1000            # or N=1000 bench/fanout.sh
#   SKIP_PEERS=1 SKIP_BUILD=1 bench/fanout.sh 1000
#   CONNECTIONS=4 MAX_RECIPIENTS=1000 SKIP_PEERS=1 bench/fanout.sh    # other delivery settings
#
# Steps:
#   1. installs what is missing (postfix for smtp-sink, GNU time, sqlite3, python3, iproute2)
#      from Debian's packages (postfix with "No configuration", its service not started);
#      `cargo build --release` unless SKIP_BUILD=1;
#   2. per run: starts smtp-sink on a free port of 127.0.0.1 the way peer_fanout.sh does
#      (`smtp-sink -c [-u nobody] -D <dump> 127.0.0.1:<port> 1024`: every transaction is
#      appended to the dump, one X-Rcpt-Args line per RCPT TO);
#   3. writes a concord config in the work dir: a fresh database, log level warn, one list
#      bench@lists.example.org (posting = "open", so the post is accepted without a
#      membership check; no footer), `[inbound.lmtp]` on another free port and no other
#      source, `[outbound] transport = "smtp"` with max_recipients = MAX_RECIPIENTS (500, as
#      Mailman 3's [mta] max_recipients), `[smtp]` to the sink (tls = "none", connections =
#      CONNECTIONS), and `[dmarc] resolver = "static"` (no DNS: Mailman 3 does no DMARC
#      lookup either with its default dmarc_mitigate_action = no_mitigation);
#      `concord members import bench <file>` adds N members;
#   4. starts `concord --config <cfg> serve`, waits for the LMTP greeting and for the host
#      to be nearly idle, then hands ONE post (the ~3.5 KiB text post peer_fanout.sh
#      builds, same generator and seed) to it over LMTP with Python's smtplib.LMTP; the
#      clock starts just before the LMTP connection. The end is the dump file's mtime once
#      the dump holds N recipients (as in peer_fanout.sh). Then it waits for the outbox to
#      record every recipient as sent, reads the daemon's peak RSS (VmHWM) and CPU time,
#      stops it with SIGTERM (it must exit 0) and checks the dump: N recipients, N distinct,
#      no transaction above MAX_RECIPIENTS.
#   5. RUNS runs with a fresh database each, for each member layout in DOMAINS: "50" spreads
#      the members over 50 domains (member123@d17.example: one transaction per domain and
#      up to MAX_RECIPIENTS, as real lists are grouped), "1" puts them all on example.org
#      like peer_fanout.sh's subscribers (a000000.sub@example.org ...), the like-for-like
#      layout. The first layout's figures are named concord_fanout_<N>_*, the others
#      concord_fanout_<N>_<D>dom_*.
#   6. unless SKIP_PEERS=1: `SUBS=$N RUNS=1 SKIP_MLMMJ=1 bash $PEER_FANOUT` (it installs
#      mailman3 and mlmmj from Debian on first use, which takes minutes), its lines passed
#      through, then fanout_speedup_vs_mailman3 (Mailman 3's wall / concord's median wall)
#      and concord's recipient rate as a share of the smtp-source ceilings (100 recipients
#      per message: one session into a dumping sink, and four sessions without the dump).
#
# Environment:
#   N (10000; the first argument wins)  RUNS (3)  DOMAINS ("50 1")
#   CONNECTIONS      [smtp] connections (default 8)
#   MAX_RECIPIENTS   [outbound] max_recipients (default 500)
#   TIMEOUT          seconds to wait for all N recipients (default 600)
#   BENCH_WORK       work dir (default: target/bench-fanout in the project)
#   SKIP_BUILD=1     use the existing binary; CONCORD_BIN (default target/release/concord)
#   SKIP_PEERS=1     concord only
#   PERSONAL=1       one copy per member (per-member one-click unsubscribe token)
#   PEER_FANOUT      peer script (default: $(dirname "$0")/../../shared/bench/peer_fanout.sh)
#   PEER_WORK        its work dir (default /tmp/bench-fanout: Mailman's runners, as user
#                    list, must be able to reach it)
#   PEER_TIMEOUT     seconds the peer script may take (default 3600)
#   QUIET_MAX        before each measurement wait at most this many seconds (default 60;
#                    0 = do not wait) for the host to be nearly idle; the busy share is reported
#   PYTHON           python3 interpreter for the LMTP client (default python3)
# Output: `name value unit` lines on stdout (also in $BENCH_WORK/results.txt); progress goes
# to stderr; concord-<D>-<run>.log, the sink's counters and the member lists in the work dir.
set -euo pipefail

case "${1:-}" in -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
N=${1:-${N:-10000}}
RUNS=${RUNS:-3}
# PERSONAL=1: each member gets a copy of their own carrying their RFC 8058 one-click
# unsubscribe token (as with [web] enabled), instead of one copy for all.
PERSONAL=${PERSONAL:-0}
PERSONAL_LINE=""
if [ "$PERSONAL" = 1 ]; then
  PERSONAL_LINE='unsubscribe_url = "https://lists.example.org/list/bench/unsubscribe/{token}"'
fi
DOMAINS=${DOMAINS:-"50 1"}
CONNECTIONS=${CONNECTIONS:-8}
MAX_RECIPIENTS=${MAX_RECIPIENTS:-500}
TIMEOUT=${TIMEOUT:-600}
QUIET_MAX=${QUIET_MAX:-60}
PEER_FANOUT=${PEER_FANOUT:-$(dirname "$0")/../../shared/bench/peer_fanout.sh}
PEER_WORK=${PEER_WORK:-/tmp/bench-fanout}
PEER_TIMEOUT=${PEER_TIMEOUT:-3600}
PYTHON=${PYTHON:-python3}
CONCORD_BIN=${CONCORD_BIN:-$ROOT/target/release/concord}
LIST_ADDR=bench@lists.example.org

for v in N RUNS CONNECTIONS MAX_RECIPIENTS TIMEOUT PEER_TIMEOUT; do
  case ${!v} in ''|*[!0-9]*|0) echo "fanout.sh: $v must be a positive integer, got '${!v}'" >&2; exit 2 ;; esac
done
for d in $DOMAINS; do
  case $d in ''|*[!0-9]*|0) echo "fanout.sh: DOMAINS must hold positive integers, got '$DOMAINS'" >&2; exit 2 ;; esac
done
[ -n "${DOMAINS// /}" ] || { echo "fanout.sh: DOMAINS is empty" >&2; exit 2; }

log() { printf '# %s\n' "$*" >&2; }
die() { printf 'fanout.sh: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------ tools
apt_updated=
need_pkgs() {  # install the given Debian packages (apt-get update once per run)
  [ $# -eq 0 ] && return 0
  log "installing: $*"
  local guard=0 rc=0
  # postfix: no debconf questions, no configuration of the system's instance, and its
  # maintainer scripts may not start it (policy-rc.d answers 101 while we install)
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null || true
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && guard=1
  fi
  if [ -z "$apt_updated" ]; then apt-get update -qq >&2; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2 || rc=$?
  [ $guard = 1 ] && rm -f /usr/sbin/policy-rc.d
  if [ -d /run/systemd/system ] && [[ " $* " == *" postfix "* ]]; then
    systemctl disable --now postfix >&2 2>/dev/null || true
  fi
  return $rc
}
PATH=$PATH:/usr/sbin:/sbin
missing=()
command -v smtp-sink > /dev/null || missing+=(postfix)
[ -x /usr/bin/time ] || missing+=(time)
command -v sqlite3 > /dev/null || missing+=(sqlite3)
command -v ss > /dev/null || missing+=(iproute2)
command -v "$PYTHON" > /dev/null || { missing+=(python3); PYTHON=python3; }
need_pkgs "${missing[@]+"${missing[@]}"}"

if [ -z "${SKIP_BUILD:-}" ]; then
  log "cargo build --release"
  (cd "$ROOT" && cargo build --release) >&2
fi
[ -x "$CONCORD_BIN" ] || die "no binary at $CONCORD_BIN"

# ------------------------------------------------------------------ helpers
mkdir -p "${BENCH_WORK:-$ROOT/target/bench-fanout}"
WORK=$(cd "${BENCH_WORK:-$ROOT/target/bench-fanout}" && pwd)
RESULTS=$WORK/results.txt
CFG=$WORK/concord.toml
DB=$WORK/concord.db
DUMPDIR=$WORK/sink
DUMP=$DUMPDIR/dump.mbox
POST=$WORK/post.eml

res() {  # name value unit
  printf '%s %s %s\n' "$1" "$2" "$3" | tee -a "$RESULTS"
}
fdiv() { awk -v a="$1" -v b="$2" -v f="${3:-%.1f}" 'BEGIN{ if (b > 0) printf f, a / b; else print "nan" }'; }
now() { date +%s.%N; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN{ printf "%.3f", a - b }'; }
median() { sort -g | awk '{ a[NR] = $1 } END{ if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
HZ=$(getconf CLK_TCK)
busy_jiffies() { awk '/^cpu /{ print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
jiffies_s() { awk -v a="$1" -v b="$2" -v hz="$HZ" 'BEGIN{ printf "%.2f", (b - a) / hz }'; }
proc_jiffies() {  # user + system CPU of a live process
  sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }' || echo 0
}
wait_quiet() {  # wait (at most QUIET_MAX s) until the host is <= 15% busy; prints the busy %
  local t0 b0 b1 pct
  t0=$(date +%s)
  while :; do
    b0=$(busy_jiffies); sleep 2; b1=$(busy_jiffies)
    pct=$(awk -v a="$b0" -v b="$b1" -v hz="$HZ" -v n="$(nproc)" \
      'BEGIN{ printf "%.0f", 100 * (b - a) / hz / 2 / n }')
    [ "$pct" -le 15 ] && break
    if [ $(( $(date +%s) - t0 )) -ge "$QUIET_MAX" ]; then
      [ "$QUIET_MAX" -gt 0 ] && log "host still ${pct}% busy after ${QUIET_MAX}s; measuring anyway"
      break
    fi
  done
  echo "$pct"
}
free_ports() {  # two distinct free TCP ports on 127.0.0.1
  "$PYTHON" -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))'
}
port_free() { ! ss -Hltn "sport = :$1" | grep -q .; }
greets() {  # port prefix: the server on 127.0.0.1:port greets with a line starting with prefix
  ( exec 3<> "/dev/tcp/127.0.0.1/$1" || exit 1
    IFS= read -r -t 5 line <&3 || exit 1
    printf 'QUIT\r\n' >&3
    [[ $line == "$2"* ]] ) 2> /dev/null
}
sql() { sqlite3 -cmd '.timeout 10000' "$DB" "$1"; }
rcpts_in() { if [ -f "$1" ]; then grep -c '^X-Rcpt-Args' "$1" || true; else echo 0; fi; }

# ------------------------------------------------------------------ sink (as peer_fanout.sh)
SINK_PID= CONCORD_PID=
start_sink() {  # $1 port; appends every transaction to $DUMP
  local port=$1 args=(-c)
  port_free "$port" || die "port $port is busy"
  [ "$(id -u)" = 0 ] && args+=(-u nobody)
  mkdir -p "$DUMPDIR"; rm -f "$DUMP"
  [ "$(id -u)" = 0 ] && chown nobody "$DUMPDIR"
  args+=(-D "$DUMP")
  smtp-sink "${args[@]}" "127.0.0.1:$port" 1024 > "$WORK/sink.counters" 2>&1 < /dev/null &
  SINK_PID=$!
  local i
  for i in $(seq 1 100); do port_free "$port" || return 0; sleep 0.05; done
  die "smtp-sink did not start on $port"
}
stop_sink() {
  [ -n "$SINK_PID" ] || return 0
  kill "$SINK_PID" 2>/dev/null || true
  wait "$SINK_PID" 2>/dev/null || true
  SINK_PID=
}
stop_concord() {  # SIGTERM, then SIGKILL after 30 s; sets CONCORD_RC
  CONCORD_RC=
  [ -n "$CONCORD_PID" ] || return 0
  kill -TERM "$CONCORD_PID" 2>/dev/null || true
  local i
  for i in $(seq 300); do kill -0 "$CONCORD_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$CONCORD_PID" 2>/dev/null || true
  CONCORD_RC=0; wait "$CONCORD_PID" || CONCORD_RC=$?
  CONCORD_PID=
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_concord
  stop_sink
  [ $rc -ne 0 ] && log "failed (exit $rc); logs in $WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

: > "$RESULTS"
res machine_nproc "$(nproc)" cores
res machine_mem_total "$(awk '/MemTotal/{ printf "%.1f", $2 / 1048576 }' /proc/meminfo)" GiB
res machine_loadavg_1m_at_start "$(cut -d' ' -f1 /proc/loadavg)" load
res fanout_postfix_version "$(postconf -h mail_version 2>/dev/null || echo unknown)" version
res concord_fanout_members "$N" count
res concord_fanout_runs "$RUNS" count
res concord_fanout_max_recipients "$MAX_RECIPIENTS" count
res concord_fanout_connections "$CONNECTIONS" count

# The post: peer_fanout.sh's make_post (same generator and seed), To: the list.
"$PYTHON" - "$POST" "$LIST_ADDR" concord <<'EOF'
import random, sys
path, lst, tag = sys.argv[1:4]
r = random.Random(5)
words = ("the of and to in draft section working group text we should that this for is "
         "segment routing proposal comment change consensus implementation liaison statement "
         "review update security considerations protocol network operator deployment").split()
paras = []
for _ in range(7):
    s = " ".join(r.choice(words) for _ in range(75))
    line, lines = "", []
    for w in s.split():
        if len(line) + len(w) + 1 > 72:
            lines.append(line); line = w
        else:
            line = (line + " " + w).strip()
    lines.append(line)
    paras.append("\n".join(lines))
body = "Hi all,\n\n" + "\n\n".join(paras) + "\n\nThanks,\nPoster\n"
msg = ("From: Poster <poster@example.net>\nTo: %s\nSubject: [bench] fan-out benchmark post %s\n"
       "Date: Wed, 26 Nov 2025 10:00:00 +0000\nMessage-ID: <fanout-%s@example.net>\n"
       "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
       % (lst, tag, tag)) + body
open(path, "w").write(msg)
EOF
res concord_fanout_post_bytes "$(stat -c %s "$POST")" bytes

members_file() {  # $1 domains -> path of a file with N addresses
  local d=$1 f=$WORK/members-$N-$1.txt
  if [ "$d" = 1 ]; then
    # exactly peer_fanout.sh's subscribers: one domain, first letters spread
    "$PYTHON" -c '
import string, sys
for i in range(int(sys.argv[1])):
    print("%s%06d.sub@example.org" % (string.ascii_lowercase[(i * 7) % 26], i))' "$N" > "$f"
  else
    awk -v n="$N" -v d="$d" 'BEGIN{ for (i = 0; i < n; i++) printf "member%d@d%d.example\n", i, i % d }' > "$f"
  fi
  echo "$f"
}

# Hands the post to concord over LMTP; prints "t_start t_end" (epoch s) around the session.
lmtp_post() {  # port
  "$PYTHON" - "$1" "$POST" "$LIST_ADDR" <<'EOF'
import smtplib, sys, time
port, path, rcpt = int(sys.argv[1]), sys.argv[2], sys.argv[3]
msg = open(path).read()
t0 = time.time()
with smtplib.LMTP("127.0.0.1", port) as c:
    refused = c.sendmail("poster@example.net", [rcpt], msg)
t1 = time.time()
if refused:
    sys.exit("refused: %r" % (refused,))
print("%.6f %.6f" % (t0, t1))
EOF
}

# ------------------------------------------------------------------ concord
declare -A WALL_MED
run_once() {  # domains run prefix
  local d=$1 run=$2 P=$3 R=$3_run$2
  local sink_port lmtp_port
  read -r sink_port lmtp_port <<< "$(free_ports)"
  stop_sink
  start_sink "$sink_port"

  rm -f "$DB" "$DB-wal" "$DB-shm" "$DB-journal"
  cat > "$CFG" <<EOF
# written by bench/fanout.sh
[database]
url = "sqlite://$DB"

[log]
level = "warn"

[[list]]
name = "bench"
address = "$LIST_ADDR"
posting = "open"
$PERSONAL_LINE

[dmarc]
resolver = "static"

# Only LMTP: an [inbound] section means exactly the sources it names.
[inbound.lmtp]
listen = "127.0.0.1:$lmtp_port"

[outbound]
transport = "smtp"
max_recipients = $MAX_RECIPIENTS

[smtp]
host = "127.0.0.1"
port = $sink_port
tls = "none"
connections = $CONNECTIONS
EOF
  local mf t0 t1
  mf=$(members_file "$d")
  t0=$(now)
  "$CONCORD_BIN" --config "$CFG" members import bench "$mf" > "$WORK/members-import.log" 2>&1 ||
    { cat "$WORK/members-import.log" >&2; die "concord members import failed"; }
  t1=$(now)
  [ "$(sql "SELECT COUNT(*) FROM members WHERE list = 'bench'")" = "$N" ] ||
    die "members import: $(cat "$WORK/members-import.log")"
  res "${R}_members_import_wall" "$(fsub "$t1" "$t0")" s

  local clog=$WORK/concord-$d-$run.log
  "$CONCORD_BIN" --config "$CFG" serve < /dev/null > "$clog" 2>&1 &
  CONCORD_PID=$!
  local i
  for i in $(seq 300); do
    kill -0 "$CONCORD_PID" 2>/dev/null || { cat "$clog" >&2; die "concord serve exited at start"; }
    greets "$lmtp_port" 220 && break
    [ "$i" = 300 ] && { cat "$clog" >&2; die "concord's LMTP port did not answer within 30 s"; }
    sleep 0.1
  done

  res "${R}_host_busy_before" "$(wait_quiet)" %
  log "run $run ($d domain(s)): one post to $N members"
  local c0 b0 times ts te n tend c1 b1
  c0=$(proc_jiffies "$CONCORD_PID"); b0=$(busy_jiffies)
  times=$(lmtp_post "$lmtp_port") || die "the LMTP handoff failed"
  read -r ts te <<< "$times"
  local deadline=$(( $(date +%s) + TIMEOUT ))
  while :; do
    n=$(rcpts_in "$DUMP")
    [ "$n" -ge "$N" ] && break
    kill -0 "$CONCORD_PID" 2>/dev/null || { tail -n 30 "$clog" >&2; die "concord exited during the run"; }
    if [ "$(date +%s)" -ge "$deadline" ]; then
      tail -n 30 "$clog" >&2
      die "only $n of $N recipients reached the sink after ${TIMEOUT}s"
    fi
    sleep 0.05
  done
  sleep 0.3
  tend=$(stat -c %.9Y "$DUMP")
  c1=$(proc_jiffies "$CONCORD_PID"); b1=$(busy_jiffies)

  # the outbox records every outcome shortly after the sink's reply
  local left
  for i in $(seq 300); do
    left=$(sql "SELECT COUNT(*) FROM outbox_recipients WHERE state IN ('queued', 'sending')" 2>/dev/null || echo '?')
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  local sent failed
  sent=$(sql "SELECT COUNT(*) FROM outbox_recipients WHERE state = 'sent'")
  failed=$(sql "SELECT COUNT(*) FROM outbox_recipients WHERE state NOT IN ('sent', 'queued', 'sending')")

  local rss_kb ctotal
  rss_kb=$(awk '/^VmHWM:/{ print $2 }' "/proc/$CONCORD_PID/status")
  ctotal=$(proc_jiffies "$CONCORD_PID")
  stop_concord
  local crc=$CONCORD_RC
  stop_sink

  local seen distinct txns maxr wall
  seen=$(rcpts_in "$DUMP")
  distinct=$(grep '^X-Rcpt-Args' "$DUMP" | sort -u | wc -l)
  txns=$(grep -c '^X-Mail-Args' "$DUMP" || true)
  maxr=$(awk '/^X-Mail-Args/{ if (c > m) m = c; c = 0 } /^X-Rcpt-Args/{ c++ } END{ if (c > m) m = c; print m + 0 }' "$DUMP")
  wall=$(fsub "$tend" "$ts")
  echo "$wall" >> "$WORK/walls-$d"
  echo "$txns" >> "$WORK/txns-$d"
  echo "$(jiffies_s "$c0" "$c1")" >> "$WORK/cpu-$d"
  echo "$rss_kb" >> "$WORK/rss-$d"
  res "${R}_lmtp_handoff" "$(fsub "$te" "$ts")" s
  res "${R}_wall" "$wall" s
  res "${R}_rcpt_rate" "$(fdiv "$N" "$wall")" rcpt/s
  res "${R}_recipients_seen" "$seen" count
  res "${R}_recipients_distinct" "$distinct" count
  res "${R}_transactions" "$txns" count
  res "${R}_max_rcpt_per_transaction" "$maxr" count
  # mean time one connection spends on a transaction: wall shared by the connections
  res "${R}_transaction_time_per_connection" "$(fdiv "$(awk -v w="$wall" -v c="$CONNECTIONS" 'BEGIN{ print w * c * 1000 }')" "$txns" %.1f)" ms
  res "${R}_outbox_sent" "$sent" count
  res "${R}_daemon_cpu" "$(jiffies_s "$c0" "$c1")" s
  res "${R}_daemon_cpu_total" "$(jiffies_s 0 "$ctotal")" s
  res "${R}_host_cpu" "$(jiffies_s "$b0" "$b1")" s
  res "${R}_daemon_peak_rss" "$(awk -v k="$rss_kb" 'BEGIN{ printf "%.1f", k / 1024 }')" MB
  res "${R}_daemon_exit" "$crc" code

  local fail=
  [ "$seen" -eq "$N" ] || fail+=" the sink saw $seen recipients, not $N;"
  [ "$distinct" -eq "$N" ] || fail+=" $distinct distinct recipients, not $N;"
  [ "$maxr" -le "$MAX_RECIPIENTS" ] || fail+=" a transaction had $maxr recipients;"
  [ "$sent" -eq "$N" ] || fail+=" the outbox has $sent recipients sent, not $N ($failed failed or expired, $left left);"
  [ "$crc" -eq 0 ] || fail+=" concord exited $crc on SIGTERM (see $clog);"
  [ -z "$fail" ] || die "FAILED:$fail"
}

first=
for d in $DOMAINS; do
  if [ -z "$first" ]; then P=concord_fanout_$N; first=$d; else P=concord_fanout_${N}_${d}dom; fi
  rm -f "$WORK/walls-$d" "$WORK/txns-$d" "$WORK/cpu-$d" "$WORK/rss-$d"
  res "${P}_domains" "$d" count
  for run in $(seq 1 "$RUNS"); do
    run_once "$d" "$run" "$P"
  done
  med=$(median < "$WORK/walls-$d")
  WALL_MED[$d]=$med
  res "${P}_wall" "$med" s
  res "${P}_wall_min" "$(sort -g "$WORK/walls-$d" | head -1)" s
  res "${P}_wall_max" "$(sort -g "$WORK/walls-$d" | tail -1)" s
  res "${P}_rcpt_rate" "$(fdiv "$N" "$med")" rcpt/s
  res "${P}_transactions" "$(median < "$WORK/txns-$d")" count
  res "${P}_daemon_cpu" "$(median < "$WORK/cpu-$d")" s
  res "${P}_daemon_peak_rss" "$(sort -g "$WORK/rss-$d" | tail -1 | awk '{ printf "%.1f", $1 / 1024 }')" MB
done
# the peak over every run and layout
res concord_fanout_daemon_peak_rss "$(cat "$WORK"/rss-* | sort -g | tail -1 | awk '{ printf "%.1f", $1 / 1024 }')" MB

# ------------------------------------------------------------------ peers
if [ -z "${SKIP_PEERS:-}" ]; then
  [ -f "$PEER_FANOUT" ] || die "peer script not found: $PEER_FANOUT (set PEER_FANOUT= or SKIP_PEERS=1)"
  log "peers: SUBS=$N RUNS=1 SKIP_MLMMJ=1 $PEER_FANOUT (work dir $PEER_WORK; installs mailman3 on first use)"
  PEER_OUT=$WORK/peers.txt
  prc=0
  # bounded in time (timeout signals the script's whole process group)
  BENCH_WORK=$PEER_WORK SUBS=$N RUNS=1 SKIP_MLMMJ=1 \
    timeout -k 30 "$PEER_TIMEOUT" bash "$PEER_FANOUT" < /dev/null > "$PEER_OUT" 2> "$WORK/peers.log" || prc=$?
  if [ "$prc" = 124 ] || [ "$prc" = 137 ]; then  # timed out: Mailman's runners may be left
    runuser -u list -- mailman -C "$PEER_WORK/mailman/mailman.cfg" stop > /dev/null 2>&1 || true
  fi
  tee -a "$RESULTS" < "$PEER_OUT"
  res peer_fanout_exit "$prc" code
  [ "$prc" -eq 0 ] || { log "peer_fanout.sh failed ($prc); last lines of $WORK/peers.log:"; tail -n 20 "$WORK/peers.log" >&2; }
  peer() { awk -v k="$1" '$1 == k { v = $2 } END{ print v }' "$PEER_OUT"; }
  mm=$(peer "fanout.mailman3.n$N.to_last_rcpt_median")
  for d in $DOMAINS; do
    if [ "$d" = "$first" ]; then S=; else S=_${d}dom; fi
    if [ -n "$mm" ] && [ "$mm" != nan ]; then
      res "fanout_speedup_vs_mailman3$S" "$(fdiv "$mm" "${WALL_MED[$d]}" %.2f)" x
    fi
    # concord's recipients/s against smtp-source's (100 recipients per message): one
    # session into a dumping sink (as here, but that figure varies a lot between runs) and
    # four sessions without the dump
    for c in r100.s1.dump r100.s4.nodump; do
      ceil=$(peer "fanout.ceiling.smtp_source.$c.rcpt_rate")
      if [ -n "$ceil" ] && [ "$ceil" != nan ]; then
        res "fanout_concord_share_of_ceiling_${c//./_}$S" "$(fdiv "$(fdiv "$N" "${WALL_MED[$d]}" %.3f)" "$ceil" %.3f)" ratio
      fi
    done
  done
fi
log "results also in $RESULTS"
