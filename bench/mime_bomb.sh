#!/usr/bin/env bash
# The daemon's memory for one hostile mail (issue 16): starts build/switchboard with an SMTP
# receiver, sends the mail made by bench/mime_bomb.py, and prints the SMTP answer and the
# daemon's resident memory before, at its peak (VmHWM) and after.
#
#   bench/mime_bomb.sh [parts N | nested N]     (default: parts 450000, about 20 MB)
#
# Environment: BENCH_BUILD_DIR=build (a release build: scripts/build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
SB=${BENCH_BUILD_DIR:-build}/switchboard
kind=${1:-parts}
count=${2:-450000}
work=$(mktemp -d /tmp/switchboard-mime-bomb.XXXXXX)
pid=""
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
port=$((20000 + RANDOM % 20000))
cat >"$work/config.toml" <<TOML
data_dir = "$work/data"
[api]
listen = "127.0.0.1:$((port + 1))"
[email.receiver]
enabled = true
listen = "127.0.0.1:$port"
hostname = "mx.example.test"
[[email.accounts]]
address = "andy@example.test"
allow_from = ["nobody@example.org"]
TOML
python3 bench/mime_bomb.py "$kind" "$count" >"$work/mail.eml"
"$SB" run --config "$work/config.toml" 2>"$work/log" &
pid=$!
for _ in $(seq 100); do
  curl -sf "127.0.0.1:$((port + 1))/health" >/dev/null && break
  sleep 0.1
done
rss() { awk -v k="$1:" '$1 == k {print $2 / 1024 " MiB"}' "/proc/$pid/status"; }
echo "mail: $kind $count, $(stat -c %s "$work/mail.eml") bytes"
echo "RSS before: $(rss VmRSS)"
/usr/bin/time -f "sent in %e s" python3 bench/mime_bomb.py send "127.0.0.1:$port" "$work/mail.eml"
echo "RSS peak: $(rss VmHWM), after: $(rss VmRSS)"
curl -sf "127.0.0.1:$((port + 1))/health" >/dev/null && echo "daemon still serving"
curl -s "127.0.0.1:$((port + 1))/messages?limit=1" |
  python3 -c 'import json,sys; m=json.load(sys.stdin)[0]; print("stored:", len(m["content"]), "chars;", "problems:", m["metadata"].get("problems"))'
