#!/usr/bin/env bash
# LMTP intake benchmark: end-to-end throughput of mail submitted over SMTP to a private
# Postfix on loopback, delivered by Postfix over LMTP to `concord serve`, stored in SQLite.
#
#   bench/lmtp.sh              # 10000 messages
#   bench/lmtp.sh 2000         # or N=2000 bench/lmtp.sh
#   SKIP_BUILD=1 SESSIONS=8 LMTP_CONCURRENCY=4 bench/lmtp.sh
#
# Steps:
#   1. installs what is missing (postfix, sqlite3, GNU time, python3) from Debian's packages
#      (postfix with "No configuration", and without starting the system's instance);
#      `cargo build --release` unless SKIP_BUILD=1;
#   2. writes a concord config in the work dir (a fresh database, one list
#      bench@lists.example.org, `[inbound.lmtp]` on a free port of 127.0.0.1 and no other
#      source, log level warn) and starts `concord --config <cfg> serve`;
#   3. starts a private Postfix (config, queue and log in <work>/postfix, from the same
#      templates as the integration tests, tests/servers/postfix-{main,master}.cf): smtpd on
#      a free port of 127.0.0.1, lists.example.org relayed over lmtp:inet:127.0.0.1:<port>,
#      everything else refused, no DNS; the system's Postfix and port 25 are not touched;
#   4. bench/lmtp_submit.py builds N distinct 2-4 KB list messages (unique Message-IDs,
#      subjects, two thirds of them replies with References) in memory, then submits them
#      over SESSIONS parallel SMTP connections (pipelined MAIL/RCPT/DATA);
#   5. the clock runs from the first connection until concord has stored all N
#      (SELECT COUNT(*) FROM raw_messages, polled every POLL seconds; TIMEOUT); then waits
#      for the threader and for Postfix's queue to drain, reads the daemon's CPU time and
#      peak RSS (VmHWM), stops concord with SIGTERM (it must exit 0) and Postfix. A stored
#      count other than N, a quarantined message or a deferred delivery fails the run.
#
# Environment:
#   N (10000; the first argument wins)  SEED (1)
#   SESSIONS          parallel SMTP client connections (default 4)
#   LMTP_CONCURRENCY  Postfix's lmtp_destination_concurrency_limit (default 10)
#   IN_FLOW_DELAY     Postfix's in_flow_delay (default 1s, Postfix's own; 0 turns off the
#                     throttling of submission while the queue manager lags behind)
#   TIMEOUT           seconds to wait for all N to be stored (default 600)
#   POLL              seconds between polls of the database (default 0.2)
#   BENCH_WORK        work dir (default: target/bench-lmtp in the project)
#   SKIP_BUILD=1      use the existing binary; CONCORD_BIN (default target/release/concord)
#   QUIET_MAX         before measuring wait at most this many seconds (default 60; 0 = do
#                     not wait) for the host to be nearly idle; the busy share seen is reported
#   PYTHON            python3 interpreter for the client (default python3)
# Output: `name value unit` lines on stdout (also in $BENCH_WORK/results.txt); progress goes
# to stderr; concord.log, postfix/postfix.log, submit.log and a sample message in the work dir.
set -euo pipefail

case "${1:-}" in -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
N=${1:-${N:-10000}}
SEED=${SEED:-1}
SESSIONS=${SESSIONS:-4}
LMTP_CONCURRENCY=${LMTP_CONCURRENCY:-10}
IN_FLOW_DELAY=${IN_FLOW_DELAY:-1s}
TIMEOUT=${TIMEOUT:-600}
POLL=${POLL:-0.2}
QUIET_MAX=${QUIET_MAX:-60}
PYTHON=${PYTHON:-python3}
CONCORD_BIN=${CONCORD_BIN:-$ROOT/target/release/concord}
SUBMIT=$HERE/lmtp_submit.py
DOMAIN=lists.example.org
LIST_ADDR=bench@$DOMAIN

for v in N SESSIONS LMTP_CONCURRENCY TIMEOUT; do
  case ${!v} in ''|*[!0-9]*|0) echo "lmtp.sh: $v must be a positive integer, got '${!v}'" >&2; exit 2 ;; esac
done

log() { printf '# %s\n' "$*" >&2; }
die() { printf 'lmtp.sh: %s\n' "$*" >&2; exit 1; }

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
missing=()
PATH=$PATH:/usr/sbin:/sbin
command -v postfix > /dev/null || missing+=(postfix)
[ -x /usr/bin/time ] || missing+=(time)
command -v sqlite3 > /dev/null || missing+=(sqlite3)
command -v "$PYTHON" > /dev/null || { missing+=(python3); PYTHON=python3; }
need_pkgs "${missing[@]+"${missing[@]}"}"
id postfix > /dev/null 2>&1 || die "system user postfix is missing (package postfix)"

if [ -z "${SKIP_BUILD:-}" ]; then
  log "cargo build --release"
  (cd "$ROOT" && cargo build --release) >&2
fi
[ -x "$CONCORD_BIN" ] || die "no binary at $CONCORD_BIN"

# ------------------------------------------------------------------ helpers
mkdir -p "${BENCH_WORK:-$ROOT/target/bench-lmtp}"
WORK=$(cd "${BENCH_WORK:-$ROOT/target/bench-lmtp}" && pwd)
case $WORK in *[\|\&\\]*) die "the work dir path may not contain | & or \\: $WORK" ;; esac
RESULTS=$WORK/results.txt
CFG=$WORK/concord.toml
DB=$WORK/concord.db
PF=$WORK/postfix
PFETC=$PF/etc

res() {  # name value unit
  printf '%s %s %s\n' "$1" "$2" "$3" | tee -a "$RESULTS"
}
fdiv() { awk -v a="$1" -v b="$2" -v f="${3:-%.1f}" 'BEGIN{ if (b > 0) printf f, a / b; else print "nan" }'; }
now() { date +%s.%N; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN{ printf "%.3f", a - b }'; }
HZ=$(getconf CLK_TCK)
busy_jiffies() { awk '/^cpu /{ print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
jiffies_s() { awk -v a="$1" -v b="$2" -v hz="$HZ" 'BEGIN{ printf "%.2f", (b - a) / hz }'; }
# CPU jiffies of a process (user + system); with a second argument also of its reaped children
proc_jiffies() {
  local f
  f=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  # fields after "(comm) ": state=1 ... utime=12 stime=13 cutime=14 cstime=15
  awk -v kids="${2:-}" '{ t = $12 + $13; if (kids != "") t += $14 + $15; print t }' <<< "$f"
}
sys_jiffies() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $13 }'; }
# Postfix's CPU so far: the master with every child it has reaped, plus its live children
postfix_jiffies() {
  local m t c
  m=$(master_pid) || { echo 0; return; }
  t=$(proc_jiffies "$m" kids)
  for c in $(ps -o pid= --ppid "$m" 2>/dev/null); do t=$((t + $(proc_jiffies "$c"))); done
  echo "$t"
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
greets() {  # port prefix: the server on 127.0.0.1:port greets with a line starting with prefix
  ( exec 3<> "/dev/tcp/127.0.0.1/$1" || exit 1
    IFS= read -r -t 5 line <&3 || exit 1
    printf 'QUIT\r\n' >&3
    [[ $line == "$2"* ]] ) 2> /dev/null
}
sql() { sqlite3 -cmd '.timeout 10000' "$DB" "$1"; }
master_pid() {
  local p
  p=$(tr -d ' \n' 2>/dev/null < "$PF/spool/pid/master.pid") || return 1
  [ -n "$p" ] && [ "$p" -gt 1 ] && kill -0 "$p" 2>/dev/null && echo "$p"
}
queue_len() { find "$PF/spool/"{maildrop,incoming,active,deferred,hold} -type f 2>/dev/null | wc -l; }

# ------------------------------------------------------------------ cleanup
CONCORD_PID= SUBMIT_PID=
stop_postfix() {
  local m
  m=$(master_pid) || return 0
  postfix -c "$PFETC" stop > /dev/null 2>&1 || true
  if [ -n "$m" ]; then
    for _ in $(seq 150); do kill -0 "$m" 2>/dev/null || break; sleep 0.1; done
    # the master leads its own process group: whatever of it is left
    kill -KILL -- "-$m" 2>/dev/null || true
  fi
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$SUBMIT_PID" ] && kill -0 "$SUBMIT_PID" 2>/dev/null; then
    kill -TERM -- "-$SUBMIT_PID" 2>/dev/null || true  # its own process group (setsid)
  fi
  if [ -n "$CONCORD_PID" ] && kill -0 "$CONCORD_PID" 2>/dev/null; then
    kill -TERM "$CONCORD_PID" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$CONCORD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$CONCORD_PID" 2>/dev/null || true
  fi
  stop_postfix
  [ $rc -ne 0 ] && log "failed (exit $rc); logs in $WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A Postfix left running by an interrupted earlier run in the same work dir.
stop_postfix

: > "$RESULTS"
res machine_nproc "$(nproc)" cores
res machine_mem_total "$(awk '/MemTotal/{ printf "%.1f", $2 / 1048576 }' /proc/meminfo)" GiB
res machine_loadavg_1m_at_start "$(cut -d' ' -f1 /proc/loadavg)" load
res lmtp_postfix_version "$(postconf -h mail_version 2>/dev/null || echo unknown)" version

read -r LMTP_PORT SMTP_PORT <<< "$(free_ports)"

# ------------------------------------------------------------------ concord
rm -f "$DB" "$DB-wal" "$DB-shm" "$DB-journal"
cat > "$CFG" <<EOF
# written by bench/lmtp.sh
[database]
url = "sqlite://$DB"

# An open list with no members: every post is accepted and archived and nothing is sent,
# so the figure is intake (LMTP, storage, routing, threading, the list stage), not delivery.
[[list]]
name = "bench"
address = "$LIST_ADDR"
posting = "open"

# Only LMTP: an [inbound] section means exactly the sources it names (no Maildir).
[inbound.lmtp]
listen = "127.0.0.1:$LMTP_PORT"

[log]
level = "warn"
EOF
log "concord serve, LMTP on 127.0.0.1:$LMTP_PORT"
"$CONCORD_BIN" --config "$CFG" serve < /dev/null > "$WORK/concord.log" 2>&1 &
CONCORD_PID=$!
for i in $(seq 300); do
  kill -0 "$CONCORD_PID" 2>/dev/null || { cat "$WORK/concord.log" >&2; die "concord serve exited at start"; }
  greets "$LMTP_PORT" 220 && break
  [ "$i" = 300 ] && { cat "$WORK/concord.log" >&2; die "concord's LMTP port did not answer within 30 s"; }
  sleep 0.1
done

# ------------------------------------------------------------------ postfix
log "private Postfix in $PF, SMTP on 127.0.0.1:$SMTP_PORT"
rm -rf "$PF"
mkdir -p "$PFETC" "$PF/spool" "$PF/data"
chmod 755 "$PF"
chown postfix: "$PF/data"
printf '%s lmtp:inet:127.0.0.1:%s\n' "$DOMAIN" "$LMTP_PORT" > "$PFETC/transport"
sed -e "s|{{dir}}|$PF|g" -e "s|{{domain}}|$DOMAIN|g" \
  -e "s|{{outbound}}|default_transport = error:5.7.1 no outside delivery from this bench instance|" \
  "$ROOT/tests/servers/postfix-main.cf" > "$PFETC/main.cf"
sed -e "s|{{smtp_port}}|$SMTP_PORT|g" "$ROOT/tests/servers/postfix-master.cf" > "$PFETC/master.cf"
grep -q '{{' "$PFETC/main.cf" "$PFETC/master.cf" && die "unfilled placeholder in the Postfix templates"
postconf -c "$PFETC" -e \
  "default_process_limit = 100" \
  "lmtp_destination_concurrency_limit = $LMTP_CONCURRENCY" \
  "in_flow_delay = $IN_FLOW_DELAY" \
  "disable_dns_lookups = yes" \
  "smtp_host_lookup = native" \
  "lmtp_host_lookup = native" \
  "smtpd_peername_lookup = no"
postfix -c "$PFETC" start > "$PF/start.log" 2>&1 || {
  cat "$PF/start.log" "$PF/postfix.log" >&2 2>/dev/null
  script -qec "postfix -c '$PFETC' check" /dev/null >&2 || true
  die "Postfix did not start"
}
for i in $(seq 300); do
  greets "$SMTP_PORT" 220 && break
  [ "$i" = 300 ] && { cat "$PF/postfix.log" >&2 2>/dev/null; die "Postfix's SMTP port did not answer within 30 s"; }
  sleep 0.1
done

# ------------------------------------------------------------------ measurement
res lmtp_host_busy_before "$(wait_quiet)" %
log "submitting $N messages over $SESSIONS SMTP sessions"
c0=$(proc_jiffies "$CONCORD_PID"); s0=$(sys_jiffies "$CONCORD_PID"); p0=$(postfix_jiffies); b0=$(busy_jiffies); w0=$(now)
setsid /usr/bin/time -v -o "$WORK/submit.time" "$PYTHON" "$SUBMIT" --count "$N" --seed "$SEED" \
  --port "$SMTP_PORT" --to "$LIST_ADDR" --sessions "$SESSIONS" --sample "$WORK/sample.eml" \
  > "$WORK/submit.out" 2> "$WORK/submit.log" &
SUBMIT_PID=$!

stored=0 t_stored= submit_rc=
deadline=$(( $(date +%s) + TIMEOUT ))
while :; do
  stored=$(sql "SELECT COUNT(*) FROM raw_messages" 2>/dev/null || echo "$stored")
  if [ "$stored" -ge "$N" ]; then t_stored=$(now); break; fi
  if [ -z "$submit_rc" ] && ! kill -0 "$SUBMIT_PID" 2>/dev/null; then
    submit_rc=0; wait "$SUBMIT_PID" || submit_rc=$?
    if [ "$submit_rc" -ne 0 ]; then
      cat "$WORK/submit.out" "$WORK/submit.log" >&2
      die "submission failed (exit $submit_rc); $stored stored"
    fi
  fi
  kill -0 "$CONCORD_PID" 2>/dev/null || { tail -n 30 "$WORK/concord.log" >&2; die "concord exited during the run"; }
  if [ "$(date +%s)" -ge "$deadline" ]; then
    log "postfix queue: $(queue_len) files; last log lines:"
    tail -n 20 "$PF/postfix.log" >&2 2>/dev/null || true
    tail -n 20 "$WORK/concord.log" >&2
    die "only $stored of $N messages stored after ${TIMEOUT}s"
  fi
  sleep "$POLL"
done
c1=$(proc_jiffies "$CONCORD_PID"); s1=$(sys_jiffies "$CONCORD_PID"); p1=$(postfix_jiffies); b1=$(busy_jiffies); w1=$(now)
if [ -z "$submit_rc" ]; then
  submit_rc=0; wait "$SUBMIT_PID" || submit_rc=$?
  [ "$submit_rc" -eq 0 ] || { cat "$WORK/submit.out" "$WORK/submit.log" >&2; die "submission failed (exit $submit_rc)"; }
fi
SUBMIT_PID=
val() { awk -v k="$1" '$1 == k { print $2 }' "$WORK/submit.out"; }
t_start=$(val submit_start); t_submitted=$(val submit_end)
[ -n "$t_start" ] && [ -n "$t_submitted" ] || { cat "$WORK/submit.out" >&2; die "no timing from the submitter"; }

# The threader runs behind intake; then Postfix removes its last queue files.
t_threaded=
for _ in $(seq 600); do
  [ "$(sql "SELECT COUNT(*) FROM messages WHERE quarantine IS NULL AND thread_id IS NULL")" = 0 ] && { t_threaded=$(now); break; }
  sleep 0.1
done
for _ in $(seq 300); do [ "$(queue_len)" = 0 ] && break; sleep 0.1; done

WALL=$(fsub "$t_stored" "$t_start")
SUBMIT_WALL=$(fsub "$t_submitted" "$t_start")
res lmtp_messages "$N" count
res lmtp_msg_bytes_avg "$(val gen_bytes_avg)" bytes
res lmtp_submit_sessions "$SESSIONS" count
res lmtp_lmtp_concurrency_limit "$LMTP_CONCURRENCY" count
res lmtp_submit_wall "$SUBMIT_WALL" s
res lmtp_submit_rate "$(fdiv "$N" "$SUBMIT_WALL")" msg/s
res lmtp_wall "$WALL" s
res lmtp_rate "$(fdiv "$N" "$WALL")" msg/s
res lmtp_store_lag_after_submit "$(fsub "$t_stored" "$t_submitted")" s
[ -n "$t_threaded" ] && res lmtp_threaded_wall "$(fsub "$t_threaded" "$t_start")" s
# CPU figures cover the window from the submitter's start (building the messages included)
# until all N were stored
res lmtp_cpu_window "$(fsub "$w1" "$w0")" s
res lmtp_gen_seconds "$(val gen_seconds)" s
res lmtp_daemon_cpu "$(jiffies_s "$c0" "$c1")" s
res lmtp_daemon_cpu_kernel "$(jiffies_s "$s0" "$s1")" s
res lmtp_daemon_cpu_per_msg "$(fdiv "$(( (c1 - c0) * 1000 ))" "$((N * HZ))" %.3f)" ms
res lmtp_postfix_cpu "$(jiffies_s "$p0" "$p1")" s
SUBMIT_CPU=$(awk -F': ' '/User time/{ u = $2 } /System time/{ s = $2 } END{ printf "%.2f", u + s }' "$WORK/submit.time")
res lmtp_submitter_cpu "$SUBMIT_CPU" s
res lmtp_host_cpu "$(jiffies_s "$b0" "$b1")" s
# the rest of the host's CPU in the window: the poller, the kernel, and anything else that
# ran meanwhile (a large value means the measurement shared the machine)
res lmtp_host_cpu_other "$(awk -v h="$(jiffies_s "$b0" "$b1")" -v c="$(jiffies_s "$c0" "$c1")" \
  -v p="$(jiffies_s "$p0" "$p1")" -v s="$SUBMIT_CPU" 'BEGIN{ printf "%.2f", h - c - p - s }')" s

# ------------------------------------------------------------------ checks and shutdown
STORED=$(sql "SELECT COUNT(*) FROM raw_messages")
QUAR=$(sql "SELECT COUNT(*) FROM messages WHERE quarantine IS NOT NULL")
MIDS=$(sql "SELECT COUNT(DISTINCT message_id) FROM messages WHERE quarantine IS NULL")
ROUTED=$(sql "SELECT COUNT(DISTINCT message) FROM deliveries WHERE list = 'bench'")
THREADS=$(sql "SELECT COUNT(DISTINCT thread_id) FROM messages WHERE thread_id IS NOT NULL")
DEFERRED=$(grep -c 'status=deferred' "$PF/postfix.log" 2>/dev/null || true)
SENT=$(grep -c 'status=sent' "$PF/postfix.log" 2>/dev/null || true)
res lmtp_stored "$STORED" count
res lmtp_quarantined "$QUAR" count
res lmtp_distinct_message_ids "$MIDS" count
res lmtp_routed_to_list "$ROUTED" count
res lmtp_threads "$THREADS" count
res lmtp_postfix_delivered "${SENT:-0}" count
res lmtp_postfix_deferred "${DEFERRED:-0}" count
res lmtp_postfix_queue_left "$(queue_len)" count
# Postfix's delays=a/b/c/d per delivery: a before the queue manager (receipt, cleanup,
# in_flow_delay), b in the queue manager (waiting for an LMTP slot), c connection setup,
# d transmission (includes concord's commit before its 250)
awk 'match($0, /delays=[0-9.]+\/[0-9.]+\/[0-9.]+\/[0-9.]+/) {
       split(substr($0, RSTART + 7, RLENGTH - 7), d, "/"); n++
       for (i = 1; i <= 4; i++) { s[i] += d[i]; if (d[i] > m[i]) m[i] = d[i] } }
     END { split("before_qmgr in_qmgr conn xmit", k, " ")
           for (i = 1; i <= 4; i++) printf "lmtp_postfix_delay_%s_avg %.3f s\nlmtp_postfix_delay_%s_max %.2f s\n", k[i], n ? s[i] / n : 0, k[i], m[i] }' \
  "$PF/postfix.log" > "$WORK/delays.txt" 2>/dev/null || true
while read -r a b c; do res "$a" "$b" "$c"; done < "$WORK/delays.txt"

RSS_KB=$(awk '/^VmHWM:/{ print $2 }' "/proc/$CONCORD_PID/status")
res lmtp_daemon_peak_rss "$(awk -v k="$RSS_KB" 'BEGIN{ printf "%.1f", k / 1024 }')" MB
ctotal=$(proc_jiffies "$CONCORD_PID")
log "stopping concord (SIGTERM)"
kill -TERM "$CONCORD_PID"
crc=0; wait "$CONCORD_PID" || crc=$?
CONCORD_PID=
res lmtp_daemon_cpu_total "$(jiffies_s 0 "$ctotal")" s
res lmtp_daemon_exit "$crc" code
stop_postfix

dbb=$(stat -c %s "$DB")
[ -f "$DB-wal" ] && dbb=$((dbb + $(stat -c %s "$DB-wal")))
res lmtp_db_bytes "$dbb" bytes
res lmtp_db_per_msg "$(fdiv "$dbb" "$N" %.0f)" bytes

fail=
[ "$STORED" -eq "$N" ] || fail+=" stored $STORED of $N messages;"
[ "$MIDS" -eq "$N" ] || fail+=" $MIDS distinct Message-IDs, not $N;"
[ "$ROUTED" -eq "$N" ] || fail+=" $ROUTED messages routed to the list, not $N;"
[ "$QUAR" -eq 0 ] || fail+=" $QUAR quarantined;"
[ "${DEFERRED:-0}" -eq 0 ] || fail+=" $DEFERRED deliveries deferred (see $PF/postfix.log);"
[ "$crc" -eq 0 ] || fail+=" concord exited $crc on SIGTERM (see $WORK/concord.log);"
[ -z "$fail" ] || die "FAILED:$fail"
log "results also in $RESULTS"
