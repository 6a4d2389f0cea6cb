#!/usr/bin/env bash
# Throughput of switchboard's SMTP receiver: messages per second accepted *and committed*
# (the 250 is sent only after the database commit), with Postfix's smtp-source as the
# client, side by side with the seed's receiver shape (aiosmtpd writing each message to a
# file with fsync) on the same machine in the same run. Prints the ratio.
#
#   bench/smtp_bench.sh
#
# Environment (all optional):
#   BENCH_MESSAGES=2000   messages per measurement
#   BENCH_SESSIONS=10     concurrent SMTP sessions
#   BENCH_SIZES="2048 102400"  message sizes in bytes
#   BENCH_BUILD_DIR=build  build directory (built with scripts/build.sh if it has no binary)
#   BENCH_STORE_SYNC=full  [store] synchronous of the daemon (normal: no fsync per commit)
#
# Needs smtp-source (Debian: postfix; installed here with "No configuration", so no mail
# server starts) and python3-aiosmtpd. The daemon's account allows nobody, so every message
# is parsed and stored as `filtered` and no agent runs: this measures the receiver.
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD_DIR=${BENCH_BUILD_DIR:-build}
SB=$BUILD_DIR/switchboard
MESSAGES=${BENCH_MESSAGES:-2000}
SESSIONS=${BENCH_SESSIONS:-10}
SIZES=${BENCH_SIZES:-"2048 102400"}

sudo=""
[[ $(id -u) -ne 0 ]] && sudo=sudo
if ! command -v smtp-source >/dev/null; then
  echo "installing postfix (for smtp-source; configured as 'No configuration') ..." >&2
  echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postfix >/dev/null
fi
/usr/bin/python3 -c "import aiosmtpd" 2>/dev/null || scripts/install-deps.sh --test
[[ -x $SB ]] || scripts/build.sh "$BUILD_DIR" >&2

work=$(mktemp -d /tmp/switchboard-smtp-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 200); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on $1" >&2
  return 1
}

api_port=$(free_port)
smtp_port=$(free_port)
cat >"$work/switchboard.toml" <<TOML
data_dir = "$work/data"
[api]
listen = "127.0.0.1:$api_port"
[log]
level = "warn"
[store]
synchronous = "${BENCH_STORE_SYNC:-full}"
[agent]
runtime = "none"
[email.receiver]
enabled = true
listen = "127.0.0.1:$smtp_port"
hostname = "bench.invalid"
max_connections_per_client = 100
[[email.accounts]]
address = "andy@bench.invalid"
allow_from = ["nobody@nowhere.invalid"]
TOML
"$SB" run --config "$work/switchboard.toml" 2>"$work/switchboard.log" &
pids+=($!)
wait_port "$smtp_port"

ref_port_file=$work/aiosmtpd.port
/usr/bin/python3 bench/aiosmtpd_fsync_sink.py --port-file "$ref_port_file" --dir "$work/aiosmtpd" \
  2>"$work/aiosmtpd.log" &
pids+=($!)
for _ in $(seq 200); do [[ -s $ref_port_file ]] && break; sleep 0.05; done
ref_port=$(cat "$ref_port_file")
wait_port "$ref_port"

# Seconds smtp-source takes for $MESSAGES messages of $1 bytes to port $2.
measure() {
  local start end
  start=$(date +%s.%N)
  smtp-source -c -l "$1" -m "$MESSAGES" -s "$SESSIONS" -f alice@bench.invalid \
    -t andy@bench.invalid "127.0.0.1:$2" >/dev/null
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}

echo "== SMTP receiver throughput: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "   $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "   smtp-source, $MESSAGES messages, $SESSIONS sessions; every 250 after a durable write"
echo
printf '%-10s %-26s %12s %10s\n' size server messages/s ratio
for size in $SIZES; do
  measure "$size" "$smtp_port" >/dev/null  # warm-up
  ours=$(measure "$size" "$smtp_port")
  theirs=$(measure "$size" "$ref_port")
  ours_rate=$(echo "$MESSAGES / $ours" | bc -l)
  theirs_rate=$(echo "$MESSAGES / $theirs" | bc -l)
  printf '%-10s %-26s %12.0f %10s\n' "$size" "switchboard (SQLite)" "$ours_rate" \
    "$(printf '%.1fx' "$(echo "$ours_rate / $theirs_rate" | bc -l)")"
  printf '%-10s %-26s %12.0f %10s\n' "$size" "aiosmtpd + file + fsync" "$theirs_rate" "1.0x"
done
stored=$(curl -s "127.0.0.1:$api_port/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["store"]["writes"])')
echo
echo "switchboard store writes: $stored (each message one row)"
