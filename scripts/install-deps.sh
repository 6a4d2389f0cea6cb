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
  libgmime-3.0-dev libmd4c-dev libmd4c-html0-dev libseccomp-dev
  bubblewrap
)
if [[ "${1:-}" == "--test" ]]; then
  packages+=(googletest libgtest-dev libgmock-dev libbenchmark-dev wrk sqlite3 procps curl
    swaks libnet-ssleay-perl libio-socket-ssl-perl python3-aiosmtpd openssl
    dovecot-imapd dovecot-lmtpd cyrus-common cyrus-caldav cyrus-admin sasl2-bin
    clang libclang-rt-14-dev)  # libFuzzer and the sanitizers' runtime (scripts/fuzz.sh)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
echo "installing: ${missing[*]}" >&2
if [[ "${1:-}" == "--test" && ! -e /usr/sbin/policy-rc.d ]]; then
  # The tests start their own throwaway mail servers (Cyrus, Dovecot); keep the packages
  # from starting system-wide daemons on a machine with init scripts: invoke-rc.d asks
  # policy-rc.d first, and 101 means "not allowed".
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod 755 /usr/sbin/policy-rc.d
  trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
