#!/usr/bin/env bash
# API benchmark of switchboard, side by side with the stack it replaces.
#
#   bench/api_bench.sh
#
# Measures, on a store of 100k messages:
#   - requests/s and latency (p50/p90/p99/max) of GET /messages?limit=50 and POST /messages
#     with wrk, for [store] synchronous = "full" (the default) and "normal";
#   - the time from exec to listening (startup_probe: fork/exec, connect() every ~100 µs),
#     on an empty store and on the 100k store;
#   - idle RSS (VmRSS, VmHWM) after start and after the load tests;
# and the same loads, RSS and start-up time of a reference: the seed's message-store API
# (FastAPI + uvicorn, messages.jsonl loaded into memory; bench/reference/telepathy_app.py),
# preloaded with the same 100k messages. Prints the figures and the ratios switchboard /
# reference. See docs/performance.md.
#
# Environment (all optional):
#   BENCH_DURATION=10s        length of each main wrk run (GET limit=50, POST)
#   BENCH_SHORT_DURATION=3s   length of the breakdown runs (GET /health, GET limit=1)
#   BENCH_THREADS=2           wrk threads
#   BENCH_CONNECTIONS=32      wrk connections
#   BENCH_MESSAGES=100000     messages in the store
#   BENCH_STARTUP_RUNS=20     start-up runs of switchboard (per store)
#   BENCH_REF_STARTUP_RUNS=5  start-up runs of the reference (each loads the whole JSONL file)
#   BENCH_BUILD_DIR=build     build directory (built with scripts/build.sh if the binary is missing)
#   SWITCHBOARD_BIN=...       binary to measure (default $BENCH_BUILD_DIR/switchboard)
#   BENCH_SKIP_REFERENCE=1    do not run the reference
#   BENCH_NO_INSTALL=1        do not apt-get install the reference's packages when missing
#   BENCH_KEEP=DIR            copy the raw outputs (wrk reports, logs) to DIR
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${BENCH_DURATION:-10s}
SHORT_DURATION=${BENCH_SHORT_DURATION:-3s}
THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNECTIONS:-32}
MESSAGES=${BENCH_MESSAGES:-100000}
STARTUP_RUNS=${BENCH_STARTUP_RUNS:-20}
STORE=$((MESSAGES / 1000))k # label
REF_STARTUP_RUNS=${BENCH_REF_STARTUP_RUNS:-5}
BUILD_DIR=${BENCH_BUILD_DIR:-build}
SB=${SWITCHBOARD_BIN:-$BUILD_DIR/switchboard}
PROBE=$BUILD_DIR/bench/startup_probe
PY=/usr/bin/python3 # Debian's python, which has python3-fastapi and python3-uvicorn
WRK_DIR=$ROOT/bench/wrk
CLK_TCK=$(getconf CLK_TCK)

declare -A R # results: R[name.key]
PIDS=()      # servers started by this script, stopped on exit
TMP=""

log() { printf '%s\n' "$*" >&2; }
die() {
  log "api_bench: $*"
  exit 1
}

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  if [[ -n $TMP && -d $TMP ]]; then
    if [[ -n ${BENCH_KEEP:-} ]]; then
      mkdir -p "$BENCH_KEEP"
      cp "$TMP"/*.txt "$TMP"/*.log "$BENCH_KEEP"/ 2>/dev/null || true
    fi
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools and binaries ----------------------------------------------------------------------

command -v wrk >/dev/null || die "wrk is not installed (apt-get install wrk)"
[[ -x $PY ]] || die "$PY is missing (apt-get install python3)"

if [[ -z ${SWITCHBOARD_BIN:-} && ! -x $SB ]]; then
  log "building switchboard (scripts/build.sh $BUILD_DIR) ..."
  scripts/build.sh "$BUILD_DIR" || die "the build failed; set SWITCHBOARD_BIN to measure another binary"
fi
[[ -x $SB ]] || die "no switchboard binary at $SB"
if [[ ! -x $PROBE ]]; then
  if [[ ! -f $BUILD_DIR/CMakeCache.txt ]]; then
    cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  cmake --build "$BUILD_DIR" --target startup_probe >/dev/null || die "cannot build startup_probe"
fi
BUILD_TYPE=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null || true)
if [[ -z ${SWITCHBOARD_BIN:-} && $BUILD_TYPE != Release ]]; then
  log "warning: $BUILD_DIR is a '${BUILD_TYPE:-unknown}' build, not Release; figures will be low"
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-bench.XXXXXX")

free_port() {
  $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
SB_PORT=$(free_port)
REF_PORT=$(free_port)
while [[ $REF_PORT == "$SB_PORT" ]]; do REF_PORT=$(free_port); done

# --- helpers ---------------------------------------------------------------------------------

# wait_port PORT PID: until PORT accepts, or PID dies (returns 1), or 60 s pass.
wait_port() {
  local port=$1 pid=$2
  for _ in $(seq 1 3000); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.02
  done
  return 1
}

# stop_server PID: SIGTERM, wait up to 10 s, then SIGKILL. Sets STOP_RC to the exit status.
# (Not called in $(...): a subshell cannot wait for the script's children.)
stop_server() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    log "  (pid $pid did not stop within 10 s of SIGTERM; killed)"
  fi
  STOP_RC=0
  wait "$pid" 2>/dev/null || STOP_RC=$?
}

# rss NAME.KEY PID: records VmRSS, VmHWM, RssAnon, RssFile from /proc/PID/status and Pss
# from /proc/PID/smaps_rollup (kB) as R[NAME.KEY.VmRSS] etc.
rss() {
  local key=$1 pid=$2 line
  line=$(awk '/^(VmRSS|VmHWM|RssAnon|RssFile):/ {gsub(":", "", $1); printf "%s=%s ", $1, $2}' \
    "/proc/$pid/status" 2>/dev/null) || return 0
  line+=$(awk '/^Pss:/ {printf "Pss=%s", $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || true)
  for kv in $line; do R[$key.${kv%%=*}]=${kv#*=}; done
  log "  $key: VmRSS ${R[$key.VmRSS]:-?} kB, VmHWM ${R[$key.VmHWM]:-?} kB" \
    "(anon ${R[$key.RssAnon]:-?} kB, file ${R[$key.RssFile]:-?} kB; PSS ${R[$key.Pss]:-?} kB)"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

health_total() {
  curl -s "http://127.0.0.1:$1/health" | grep -o '"total":[0-9]*' | head -1 | cut -d: -f2
}

# load NAME PORT PID METHOD [TARGET] [DURATION]: one wrk run of GET TARGET (default
# /messages?limit=50) or POST /messages; records R[NAME.rps], p50/p90/p99/max (µs), errors,
# non2xx, and the server's CPU time per request (user + system, from /proc/PID/stat).
load() {
  local name=$1 port=$2 pid=$3 method=$4 target=${5:-/messages?limit=50} duration=${6:-$DURATION}
  local script url out t0 t1 line
  if [[ $method == GET ]]; then
    script=$WRK_DIR/get_messages.lua
    url="http://127.0.0.1:$port$target"
  else
    script=$WRK_DIR/post_message.lua
    url="http://127.0.0.1:$port/messages"
  fi
  out=$TMP/wrk-$name.txt
  t0=$(cpu_ticks "$pid")
  wrk -t"$THREADS" -c"$CONNS" -d"$duration" --latency -s "$script" "$url" >"$out" 2>&1 || true
  t1=$(cpu_ticks "$pid")
  line=$(grep '^WRK_RESULT' "$out" || true)
  if [[ -z $line ]]; then
    log "  $name: wrk produced no result:"
    sed 's/^/    /' "$out" >&2
    R[$name.failed]=1
    return 0
  fi
  for kv in ${line#WRK_RESULT }; do R[$name.${kv%%=*}]=${kv#*=}; done
  R[$name.errors]=$((R[$name.errors_connect] + R[$name.errors_read] + R[$name.errors_write] + R[$name.errors_timeout]))
  if ((R[$name.requests] > 0)); then
    R[$name.cpu_us]=$(((t1 - t0) * 1000000 / CLK_TCK / R[$name.requests]))
  fi
  log "$(printf '  %-14s %10.0f req/s  p50 %7s  p99 %7s  max %7s  errors %s  non-2xx %s  server CPU %s µs/req' \
    "$name" "${R[$name.rps]}" "$(ms "${R[$name.p50_us]}")" "$(ms "${R[$name.p99_us]}")" \
    "$(ms "${R[$name.max_us]}")" "${R[$name.errors]}" "${R[$name.non2xx]}" "${R[$name.cpu_us]:-?}")"
  if ! kill -0 "$pid" 2>/dev/null; then
    log "  $name: THE SERVER DIED during this run"
    R[$name.died]=1
  fi
}

# ms MICROSECONDS -> "1.23 ms"
ms() {
  [[ -z ${1:-} || $1 == - ]] && { echo "-"; return; }
  awk -v u="$1" 'BEGIN { if (u < 0) print "-"; else if (u < 10000) printf "%.2f ms", u / 1000; else printf "%.1f ms", u / 1000 }'
}
mb() {
  [[ -z ${1:-} ]] && { echo "-"; return; }
  awk -v k="$1" 'BEGIN { printf "%.1f MB", k / 1024 }'
}
ratio() { # ratio A B -> A/B with 2 significant decimals, or "-"
  [[ -z ${1:-} || -z ${2:-} ]] && { echo "-"; return; }
  awk -v a="$1" -v b="$2" 'BEGIN { if (b <= 0 || a < 0) print "-"; else if (a / b >= 10) printf "%.0fx", a / b; else if (a / b >= 0.1) printf "%.2fx", a / b; else printf "%.2gx", a / b }'
}
num() { # num 12345.6 -> 12,346
  [[ -z ${1:-} ]] && { echo "-"; return; }
  awk -v x="$1" 'BEGIN { s = sprintf("%.0f", x); while (s ~ /[0-9][0-9][0-9][0-9]/) sub(/[0-9][0-9][0-9]($|,)/, ",&", s); print s }'
}

# probe NAME LOGFILE RUNS PORT CMD...: start-up runs; records R[NAME.median_us] etc.
probe() {
  local name=$1 logf=$2 runs=$3 port=$4 line
  shift 4
  "$PROBE" --port "$port" --runs "$runs" --timeout-ms 60000 --log "$logf" -- "$@" \
    >"$TMP/probe-$name.txt" 2>&1 || true
  line=$(grep '^summary' "$TMP/probe-$name.txt" || true)
  if [[ -z $line ]]; then
    log "  $name: startup_probe failed:"
    sed 's/^/    /' "$TMP/probe-$name.txt" >&2
    return 0
  fi
  for kv in ${line#summary }; do R[$name.${kv%%=*}]=${kv#*=}; done
  if ((R[$name.failed] > 0)); then
    log "  $name: ${R[$name.failed]} of $runs runs did not become ready:"
    grep 'ready_us=-1' "$TMP/probe-$name.txt" | head -3 | sed 's/^/    /' >&2
  fi
  log "  $name: ready in median $(ms "${R[$name.median_us]}"), p90 $(ms "${R[$name.p90_us]}")," \
    "min $(ms "${R[$name.min_us]}"), max $(ms "${R[$name.max_us]}") ($runs runs)"
  # The probe sends SIGTERM as soon as the port accepts; a server that exits 0 on SIGTERM but
  # here died of the signal was not handling SIGTERM yet when it already accepted connections.
  R[$name.killed]=$(grep -c 'exit=signal' "$TMP/probe-$name.txt" || true)
  if ((R[$name.killed] > 0)); then
    log "  $name: in ${R[$name.killed]} of $runs runs the process died of the SIGTERM sent right" \
      "after its port accepted (no SIGTERM handler yet at that moment)"
  fi
}

# Counts warnings and errors in a daemon log.
log_problems() {
  grep -cE '\b(warn|warning|error|critical)\b|Aborted|terminate called|munmap|double free|Segmentation' "$1" || true
}

# --- machine ---------------------------------------------------------------------------------

export LC_NUMERIC=C.UTF-8
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
NPROC=$(nproc)
DATE=$(date -u +%Y-%m-%dT%H:%MZ)
SB_VERSION=$("$SB" --version 2>/dev/null | head -1 || echo '?')
log "== switchboard API benchmark, $DATE"
log "   machine: $NPROC cores, ${CPU:-unknown CPU}; $(uname -sr)"
log "   binary:  $SB ($SB_VERSION, ${BUILD_TYPE:-?} build, $(date -u -r "$SB" +%Y-%m-%dT%H:%MZ))"
log "   wrk -t$THREADS -c$CONNS -d$DURATION; store of $MESSAGES messages"
# What a durable commit costs on this disk: append 200 bytes + fdatasync, 200 times.
R[fsync_us]=$($PY - "$TMP/fsync-test" <<'EOF'
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
times = []
for _ in range(200):
    t = time.perf_counter()
    os.write(fd, b"x" * 200)
    os.fdatasync(fd)
    times.append(time.perf_counter() - t)
os.close(fd)
os.unlink(sys.argv[1])
times.sort()
print(int(times[len(times) // 2] * 1e6))
EOF
)
log "   fdatasync of a 200-byte append in $TMP: median ${R[fsync_us]} µs"

# --- data and configs ------------------------------------------------------------------------

SEED=$TMP/messages.jsonl
$PY "$ROOT/bench/gen_messages.py" "$MESSAGES" "$SEED"

write_config() { # write_config FILE DATA_DIR SYNCHRONOUS
  cat >"$1" <<EOF
data_dir = "$2"

[api]
listen = "127.0.0.1:$SB_PORT"

[store]
synchronous = "$3"
EOF
}
mkdir -p "$TMP/sb-empty" "$TMP/sb-full" "$TMP/sb-normal"
write_config "$TMP/empty.toml" "$TMP/sb-empty" full
write_config "$TMP/full.toml" "$TMP/sb-full" full
write_config "$TMP/normal.toml" "$TMP/sb-normal" normal

# --- switchboard: start-up on an empty store -------------------------------------------------

log ""
log "-- switchboard: start-up (exec -> port accepts), $STARTUP_RUNS runs per store"
probe sb_start_empty "$TMP/sb-startup-empty.log" "$STARTUP_RUNS" "$SB_PORT" \
  "$SB" run --config "$TMP/empty.toml"

# --- import ----------------------------------------------------------------------------------

t0=$(date +%s%N)
if ! "$SB" import "$SEED" --config "$TMP/full.toml" >"$TMP/import.log" 2>&1; then
  sed 's/^/    /' "$TMP/import.log" >&2
  die "import failed"
fi
t1=$(date +%s%N)
R[import.ms]=$(((t1 - t0) / 1000000))
import_ms=${R[import.ms]}
((import_ms > 0)) || import_ms=1
cp "$TMP"/sb-full/switchboard.db* "$TMP/sb-normal/"
log "  import of $MESSAGES messages: $(num "${R[import.ms]}") ms" \
  "($(num $((MESSAGES * 1000 / import_ms))) messages/s)," \
  "database $(du -m "$TMP/sb-full/switchboard.db" | cut -f1) MB"

probe sb_start_100k "$TMP/sb-startup-100k.log" "$STARTUP_RUNS" "$SB_PORT" \
  "$SB" run --config "$TMP/full.toml"

# --- switchboard: load -----------------------------------------------------------------------

# bench_switchboard MODE (full|normal)
bench_switchboard() {
  local mode=$1 pid before after rc problems line
  log ""
  log "-- switchboard, synchronous = \"$mode\", $STORE store"
  "$SB" run --config "$TMP/$mode.toml" 2>"$TMP/sb-$mode.log" &
  pid=$!
  PIDS+=("$pid")
  if ! wait_port "$SB_PORT" "$pid"; then
    sed 's/^/    /' "$TMP/sb-$mode.log" >&2
    die "switchboard ($mode) did not start"
  fi
  sleep 1
  rss "sb_$mode.idle" "$pid"
  R[sb_$mode.get_bytes]=$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:$SB_PORT/messages?limit=50")
  before=$(health_total "$SB_PORT")
  # Warm-up: page cache, connection set-up, allocator.
  wrk -t"$THREADS" -c"$CONNS" -d1s "http://127.0.0.1:$SB_PORT/messages?limit=50" >/dev/null 2>&1 || true
  load "sb_$mode.get" "$SB_PORT" "$pid" GET
  load "sb_$mode.post" "$SB_PORT" "$pid" POST
  if [[ $mode == full ]]; then
    # Where a GET's time goes: per request (/health, one message) and per message.
    load sb_full.get1 "$SB_PORT" "$pid" GET "/messages?limit=1" "$SHORT_DURATION"
    load sb_full.health "$SB_PORT" "$pid" GET /health "$SHORT_DURATION"
  fi
  if kill -0 "$pid" 2>/dev/null; then
    sleep 1
    rss "sb_$mode.after" "$pid"
    after=$(health_total "$SB_PORT")
    if [[ -n $before && -n $after ]]; then
      R[sb_$mode.stored]=$((after - before))
      local answered=$((${R[sb_$mode.post.requests]:-0} - ${R[sb_$mode.post.non2xx]:-0}))
      log "  messages stored by the POST run: $((after - before)) (wrk counted $answered answered;" \
        "requests in flight when wrk stopped are stored but not counted)"
      if ((after - before < answered)); then
        log "  WARNING: fewer messages stored than POSTs answered"
      fi
    fi
  fi
  stop_server "$pid"
  rc=$STOP_RC
  R[sb_$mode.exit]=$rc
  problems=$(log_problems "$TMP/sb-$mode.log")
  R[sb_$mode.log_problems]=$problems
  line=$(grep -o 'stopped cleanly ([0-9]* writes in [0-9]* commits)' "$TMP/sb-$mode.log" || true)
  if [[ $line =~ \(([0-9]+)\ writes\ in\ ([0-9]+)\ commits ]]; then
    R[sb_$mode.writes]=${BASH_REMATCH[1]}
    R[sb_$mode.commits]=${BASH_REMATCH[2]}
    if ((BASH_REMATCH[2] > 0)); then
      R[sb_$mode.per_commit]=$(awk -v w="${BASH_REMATCH[1]}" -v c="${BASH_REMATCH[2]}" 'BEGIN { printf "%.1f", w / c }')
      log "  group commit: ${BASH_REMATCH[1]} writes in ${BASH_REMATCH[2]} commits" \
        "(${R[sb_$mode.per_commit]} messages per commit)"
    fi
  fi
  log "  exit status after SIGTERM: $rc; warnings/errors in its log: $problems"
  if [[ $rc != 0 || $problems != 0 ]]; then
    grep -E '\b(warn|warning|error|critical)\b|Aborted|terminate|munmap|double free|Segmentation' \
      "$TMP/sb-$mode.log" | sort | uniq -c | sort -rn | head -5 | sed 's/^/    /' >&2 || true
  fi
}
bench_switchboard full
bench_switchboard normal

# --- reference -------------------------------------------------------------------------------

ensure_reference() {
  if $PY -c 'import fastapi, uvicorn' 2>/dev/null; then return 0; fi
  if [[ ${BENCH_NO_INSTALL:-0} == 1 ]]; then
    R[ref.missing]="python3-fastapi / python3-uvicorn not installed (BENCH_NO_INSTALL=1)"
    return 1
  fi
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    if [[ -t 0 ]]; then sudo=(sudo); else sudo=(sudo -n); fi
  fi
  log "  installing python3-fastapi python3-uvicorn (apt-get) ..."
  local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get)
  if ! "${apt[@]}" install -y --no-install-recommends python3-fastapi python3-uvicorn \
    >"$TMP/apt.log" 2>&1; then
    "${apt[@]}" update >>"$TMP/apt.log" 2>&1 || true
    "${apt[@]}" install -y --no-install-recommends python3-fastapi python3-uvicorn \
      >>"$TMP/apt.log" 2>&1 || true
  fi
  if ! $PY -c 'import fastapi, uvicorn' 2>/dev/null; then
    R[ref.missing]="could not install python3-fastapi / python3-uvicorn: $(tail -1 "$TMP/apt.log")"
    return 1
  fi
}

bench_reference() {
  local app=$ROOT/bench/reference/telepathy_app.py pid
  log ""
  log "-- reference: FastAPI + uvicorn, messages.jsonl in memory (bench/reference/telepathy_app.py)"
  ensure_reference || return 0
  R[ref.stack]=$($PY - <<'EOF'
import importlib.util as u
import fastapi, uvicorn
loop = "uvloop" if u.find_spec("uvloop") else "asyncio"
http = "httptools" if u.find_spec("httptools") else "h11"
print(f"fastapi {fastapi.__version__}, uvicorn {uvicorn.__version__} ({loop}, {http})")
EOF
)
  log "  ${R[ref.stack]}"
  mkdir -p "$TMP/ref"
  cp "$SEED" "$TMP/ref/messages.jsonl"
  probe ref_start "$TMP/ref-startup.log" "$REF_STARTUP_RUNS" "$REF_PORT" \
    $PY "$app" --data-dir "$TMP/ref" --port "$REF_PORT"
  $PY "$app" --data-dir "$TMP/ref" --port "$REF_PORT" 2>"$TMP/ref.log" &
  pid=$!
  PIDS+=("$pid")
  if ! wait_port "$REF_PORT" "$pid"; then
    sed 's/^/    /' "$TMP/ref.log" >&2
    R[ref.missing]="the reference did not start (see above)"
    return 0
  fi
  sleep 1
  rss ref.idle "$pid"
  R[ref.get_bytes]=$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:$REF_PORT/messages?limit=50")
  wrk -t"$THREADS" -c"$CONNS" -d1s "http://127.0.0.1:$REF_PORT/messages?limit=50" >/dev/null 2>&1 || true
  load ref.get "$REF_PORT" "$pid" GET
  load ref.post "$REF_PORT" "$pid" POST
  load ref.get1 "$REF_PORT" "$pid" GET "/messages?limit=1" "$SHORT_DURATION"
  # Last: each of the reference's /health requests scans the whole list (~30 ms), so the
  # requests still queued when wrk stops keep it busy for a while after.
  load ref.health "$REF_PORT" "$pid" GET /health "$SHORT_DURATION"
  if kill -0 "$pid" 2>/dev/null; then
    sleep 1
    rss ref.after "$pid"
  fi
  stop_server "$pid"
  log "  exit status after SIGTERM: $STOP_RC"
}
if [[ ${BENCH_SKIP_REFERENCE:-0} == 1 ]]; then
  R[ref.missing]="skipped (BENCH_SKIP_REFERENCE=1)"
else
  bench_reference
fi

# --- summary ---------------------------------------------------------------------------------

ref_note=""
[[ -n ${R[ref.missing]:-} ]] && ref_note="REFERENCE NOT RUN: ${R[ref.missing]}"

row() { printf '%-34s %14s %14s %14s %9s %9s\n' "$@"; }
echo
echo "== Summary: $NPROC cores, ${CPU:-unknown CPU}, $DATE"
echo "   wrk -t$THREADS -c$CONNS -d$DURATION --latency; store of $(num "$MESSAGES") messages;" \
  "reference: ${R[ref.stack]:-none}"
echo "   fdatasync (200-byte append) on the temp dir's disk: median ${R[fsync_us]:-?} µs"
[[ -n $ref_note ]] && echo "   $ref_note"
echo
row "" "switchboard" "switchboard" "reference" "ratio" "ratio"
row "" "sync=full" "sync=normal" "FastAPI" "full/ref" "normal/ref"
row "GET /messages?limit=50   req/s" "$(num "${R[sb_full.get.rps]:-}")" "$(num "${R[sb_normal.get.rps]:-}")" \
  "$(num "${R[ref.get.rps]:-}")" "$(ratio "${R[sb_full.get.rps]:-}" "${R[ref.get.rps]:-}")" \
  "$(ratio "${R[sb_normal.get.rps]:-}" "${R[ref.get.rps]:-}")"
for p in p50 p99 max; do
  row "                         $p" "$(ms "${R[sb_full.get.${p}_us]:-}")" "$(ms "${R[sb_normal.get.${p}_us]:-}")" \
    "$(ms "${R[ref.get.${p}_us]:-}")" "$(ratio "${R[sb_full.get.${p}_us]:-}" "${R[ref.get.${p}_us]:-}")" \
    "$(ratio "${R[sb_normal.get.${p}_us]:-}" "${R[ref.get.${p}_us]:-}")"
done
row "                    CPU µs/req" "${R[sb_full.get.cpu_us]:--}" "${R[sb_normal.get.cpu_us]:--}" \
  "${R[ref.get.cpu_us]:--}" "$(ratio "${R[sb_full.get.cpu_us]:-}" "${R[ref.get.cpu_us]:-}")" \
  "$(ratio "${R[sb_normal.get.cpu_us]:-}" "${R[ref.get.cpu_us]:-}")"
row "               response bytes" "${R[sb_full.get_bytes]:--}" "${R[sb_normal.get_bytes]:--}" \
  "${R[ref.get_bytes]:--}" "" ""
row "POST /messages           req/s" "$(num "${R[sb_full.post.rps]:-}")" "$(num "${R[sb_normal.post.rps]:-}")" \
  "$(num "${R[ref.post.rps]:-}")" "$(ratio "${R[sb_full.post.rps]:-}" "${R[ref.post.rps]:-}")" \
  "$(ratio "${R[sb_normal.post.rps]:-}" "${R[ref.post.rps]:-}")"
for p in p50 p99 max; do
  row "                         $p" "$(ms "${R[sb_full.post.${p}_us]:-}")" "$(ms "${R[sb_normal.post.${p}_us]:-}")" \
    "$(ms "${R[ref.post.${p}_us]:-}")" "$(ratio "${R[sb_full.post.${p}_us]:-}" "${R[ref.post.${p}_us]:-}")" \
    "$(ratio "${R[sb_normal.post.${p}_us]:-}" "${R[ref.post.${p}_us]:-}")"
done
row "                    CPU µs/req" "${R[sb_full.post.cpu_us]:--}" "${R[sb_normal.post.cpu_us]:--}" \
  "${R[ref.post.cpu_us]:--}" "$(ratio "${R[sb_full.post.cpu_us]:-}" "${R[ref.post.cpu_us]:-}")" \
  "$(ratio "${R[sb_normal.post.cpu_us]:-}" "${R[ref.post.cpu_us]:-}")"
row "POST messages per commit" "${R[sb_full.per_commit]:--}" "${R[sb_normal.per_commit]:--}" "" "" ""
row "GET /health              req/s" "$(num "${R[sb_full.health.rps]:-}")" "" "$(num "${R[ref.health.rps]:-}")" \
  "$(ratio "${R[sb_full.health.rps]:-}" "${R[ref.health.rps]:-}")" ""
row "                    CPU µs/req" "${R[sb_full.health.cpu_us]:--}" "" "${R[ref.health.cpu_us]:--}" \
  "$(ratio "${R[sb_full.health.cpu_us]:-}" "${R[ref.health.cpu_us]:-}")" ""
row "GET /messages?limit=1    req/s" "$(num "${R[sb_full.get1.rps]:-}")" "" "$(num "${R[ref.get1.rps]:-}")" \
  "$(ratio "${R[sb_full.get1.rps]:-}" "${R[ref.get1.rps]:-}")" ""
row "                    CPU µs/req" "${R[sb_full.get1.cpu_us]:--}" "" "${R[ref.get1.cpu_us]:--}" \
  "$(ratio "${R[sb_full.get1.cpu_us]:-}" "${R[ref.get1.cpu_us]:-}")" ""
for m in get post health get1; do
  e_full=$((${R[sb_full.$m.errors]:-0} + ${R[sb_full.$m.non2xx]:-0}))
  e_norm=$((${R[sb_normal.$m.errors]:-0} + ${R[sb_normal.$m.non2xx]:-0}))
  e_ref=$((${R[ref.$m.errors]:-0} + ${R[ref.$m.non2xx]:-0}))
  [[ -n ${R[sb_full.$m.died]:-} ]] && e_full="$e_full DIED"
  [[ -n ${R[sb_normal.$m.died]:-} ]] && e_norm="$e_norm DIED"
  [[ -n ${R[ref.$m.died]:-} ]] && e_ref="$e_ref DIED"
  [[ $m == health || $m == get1 ]] && e_norm="-"
  row "$(case $m in get) echo "GET limit=50";; post) echo POST;; health) echo "GET /health";; get1) echo "GET limit=1";; esac) errors + non-2xx" "$e_full" "$e_norm" "$([[ -n $ref_note ]] && echo - || echo "$e_ref")" "" ""
done
echo
row "" "switchboard" "" "reference" "ratio" ""
row "" "" "" "" "sb/ref" "target"
row "start-up, empty store  median" "$(ms "${R[sb_start_empty.median_us]:-}")" "" "" "" "< 20 ms"
row "                          p90" "$(ms "${R[sb_start_empty.p90_us]:-}")" "" "" "" ""
row "$(printf '%-23smedian' "start-up, $STORE store")" "$(ms "${R[sb_start_100k.median_us]:-}")" "" \
  "$(ms "${R[ref_start.median_us]:-}")" "$(ratio "${R[sb_start_100k.median_us]:-}" "${R[ref_start.median_us]:-}")" "< 20 ms"
row "                          p90" "$(ms "${R[sb_start_100k.p90_us]:-}")" "" "$(ms "${R[ref_start.p90_us]:-}")" \
  "$(ratio "${R[sb_start_100k.p90_us]:-}" "${R[ref_start.p90_us]:-}")" ""
row "                          max" "$(ms "${R[sb_start_100k.max_us]:-}")" "" "$(ms "${R[ref_start.max_us]:-}")" \
  "$(ratio "${R[sb_start_100k.max_us]:-}" "${R[ref_start.max_us]:-}")" ""
row "$(printf '%-24sVmRSS' "idle RSS, $STORE store")" "$(mb "${R[sb_full.idle.VmRSS]:-}")" "" "$(mb "${R[ref.idle.VmRSS]:-}")" \
  "$(ratio "${R[sb_full.idle.VmRSS]:-}" "${R[ref.idle.VmRSS]:-}")" "< 8 MB"
row "                         anon" "$(mb "${R[sb_full.idle.RssAnon]:-}")" "" "$(mb "${R[ref.idle.RssAnon]:-}")" \
  "$(ratio "${R[sb_full.idle.RssAnon]:-}" "${R[ref.idle.RssAnon]:-}")" ""
row "         file-backed (code...)" "$(mb "${R[sb_full.idle.RssFile]:-}")" "" "$(mb "${R[ref.idle.RssFile]:-}")" \
  "$(ratio "${R[sb_full.idle.RssFile]:-}" "${R[ref.idle.RssFile]:-}")" ""
row "                          PSS" "$(mb "${R[sb_full.idle.Pss]:-}")" "" "$(mb "${R[ref.idle.Pss]:-}")" \
  "$(ratio "${R[sb_full.idle.Pss]:-}" "${R[ref.idle.Pss]:-}")" ""
row "RSS after load (full)  VmRSS" "$(mb "${R[sb_full.after.VmRSS]:-}")" "" "$(mb "${R[ref.after.VmRSS]:-}")" \
  "$(ratio "${R[sb_full.after.VmRSS]:-}" "${R[ref.after.VmRSS]:-}")" ""
row "                        VmHWM" "$(mb "${R[sb_full.after.VmHWM]:-}")" "" "$(mb "${R[ref.after.VmHWM]:-}")" \
  "$(ratio "${R[sb_full.after.VmHWM]:-}" "${R[ref.after.VmHWM]:-}")" ""
row "RSS after load (normal) VmRSS" "$(mb "${R[sb_normal.after.VmRSS]:-}")" "" "" "" ""
row "import of the store" "$(num "${R[import.ms]:-}") ms" "" "" "" ""
killed=$((${R[sb_start_empty.killed]:-0} + ${R[sb_start_100k.killed]:-0}))
if ((killed > 0)); then
  echo
  echo "WARNING: in $killed of $((2 * STARTUP_RUNS)) start-up runs switchboard died of a SIGTERM sent"
  echo "just after its port accepted: it listens before it handles SIGTERM (no graceful stop then)."
fi
echo
echo "ratio = switchboard / reference: above 1 is better for req/s, below 1 is better for"
echo "latency, CPU, start-up time and RSS. The reference appends to messages.jsonl without"
echo "fsync (as the seed does); switchboard acknowledges a POST only after its commit."
echo "The reference's /health counts unread messages by scanning its list on every request;"
echo "GET limit=1 shows the per-request cost of both, limit=50 adds the per-message cost."
