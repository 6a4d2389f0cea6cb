#!/usr/bin/env bash
# Installs the Debian (bookworm) packages switchboard needs. Idempotent: does nothing when
# everything is there. Uses sudo when not run as root.
#   scripts/install-deps.sh          build and run
#   scripts/install-deps.sh --test   also what the tests and benchmarks need
set -euo pipefail

packages=(
  g++ cmake make pkg-config ca-certificates
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libspdlog-dev libfmt-dev libtomlplusplus-dev libcli11-dev
  libsqlite3-dev libssl-dev libcctz-dev tzdata
  libgmime-3.0-dev libmd4c-dev libmd4c-html0-dev
  bubblewrap
)
if [[ "${1:-}" == "--test" ]]; then
  packages+=(googletest libgtest-dev libgmock-dev libbenchmark-dev wrk sqlite3 procps curl
    swaks libnet-ssleay-perl libio-socket-ssl-perl python3-aiosmtpd openssl)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
echo "installing: ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
