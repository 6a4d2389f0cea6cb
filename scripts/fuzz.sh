#!/usr/bin/env bash
# Builds and runs the libFuzzer harnesses of fuzz/ (docs/fuzzing.md) in build-fuzz/.
#   scripts/fuzz.sh build                      configure and build build-fuzz/ (clang, ASan,
#                                              UBSan, libFuzzer)
#   scripts/fuzz.sh smoke [SECONDS]            build, then run every harness on its corpus and
#                                              fuzz it SECONDS more (default 20); exits non-zero
#                                              on any crash, leak, timeout or out-of-memory
#   scripts/fuzz.sh campaign [SECONDS] [NAME...]
#                                              every harness (or those named) for SECONDS
#                                              (default 600), one at a time, under nice -n 19;
#                                              figures in build-fuzz/campaign/summary.md
# Environment: FUZZ_JOBS, harnesses the smoke run runs at once (default: the number of cores);
# FUZZ_BUILD=0, the campaign uses the harnesses already built.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build-fuzz

build() {
  cmake -S . -B "$dir" -DSWITCHBOARD_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=Debug -DSWITCHBOARD_STATIC_DEPS=OFF -DSWITCHBOARD_TESTS=OFF \
    -DSWITCHBOARD_BENCH=OFF >/dev/null
  cmake --build "$dir" -j"$(nproc)"
}

harnesses() {
  for f in fuzz/*_fuzz.cpp; do basename "$f" .cpp; done
}

# run_one NAME SECONDS OUT: fuzzes NAME for SECONDS, new inputs in OUT/corpus/NAME (the
# checked-in corpus is read, never written), findings in OUT/findings/NAME, log OUT/NAME.log.
run_one() {
  local name=$1 seconds=$2 out=$3
  mkdir -p "$out/corpus/$name" "$out/findings/$name"
  local args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
    -artifact_prefix="$out/findings/$name/")
  if [[ -f fuzz/dict/$name.dict ]]; then args+=(-dict="fuzz/dict/$name.dict"); fi
  local corpora=("$out/corpus/$name")
  if [[ -d fuzz/corpus/$name ]]; then corpora+=("fuzz/corpus/$name"); fi
  local status=0 started=$SECONDS
  "$dir/fuzz/$name" "${args[@]}" "${corpora[@]}" >"$out/$name.log" 2>&1 || status=$?
  echo "$status" >"$out/$name.status"
  echo "$((SECONDS - started))" >"$out/$name.seconds"
  return 0
}

# figures NAME OUT: one Markdown table row from OUT/NAME.log (seconds: how long it ran; a
# finding stops a harness early).
figures() {
  local name=$1 out=$2 log=$2/$1.log seconds
  local status execs rate last cov ft corp findings
  status=$(cat "$out/$name.status" 2>/dev/null || echo "?")
  seconds=$(cat "$out/$name.seconds" 2>/dev/null || echo "?")
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | grep ' cov: ' | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$last")
  findings=$(find "$out/findings/$name" -type f | wc -l)
  echo "| $name | $seconds | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} | $findings | $status |"
}

table_head() {
  echo "| harness | seconds | executions | exec/s | cov | ft | corpus (inputs/size) | findings | exit |"
  echo "|---|---|---|---|---|---|---|---|---|"
}

smoke() {
  local seconds=${1:-20} out=$dir/smoke
  local started=$SECONDS
  build
  echo "fuzz smoke: build took $((SECONDS - started)) s" >&2
  rm -rf "$out"
  mkdir -p "$out"
  started=$SECONDS
  export -f run_one
  export dir
  harnesses | xargs -P "${FUZZ_JOBS:-$(nproc)}" -I{} bash -c "run_one {} $seconds $out"
  echo "fuzz smoke: runs took $((SECONDS - started)) s" >&2
  local failed=0
  table_head
  for name in $(harnesses); do
    figures "$name" "$out"
    if [[ $(cat "$out/$name.status") != 0 ]]; then
      failed=1
      echo "--- $name failed; the input is in $out/findings/$name/; its log ends:" >&2
      tail -n 60 "$out/$name.log" >&2
    fi
  done
  return $failed
}

campaign() {
  local seconds=${1:-600}
  shift || true
  local names=("$@")
  if [[ ${#names[@]} -eq 0 ]]; then mapfile -t names < <(harnesses); fi
  local out=$dir/campaign summary=$dir/campaign/summary.md
  if [[ "${FUZZ_BUILD:-1}" != 0 ]]; then build; fi
  mkdir -p "$out"
  {
    echo "Campaign started $(date -u '+%Y-%m-%d %H:%M UTC'), $seconds s per harness, commit $(git rev-parse --short HEAD)."
    echo
    table_head
  } >>"$summary"
  local failed=0
  for name in "${names[@]}"; do
    # Findings of an earlier campaign are kept aside, so that the row counts this run's.
    if [[ -n $(ls -A "$out/findings/$name" 2>/dev/null) ]]; then
      mv "$out/findings/$name" "$out/findings/$name.before-$(date +%Y%m%d-%H%M%S)"
    fi
    nice -n 19 bash -c "$(declare -f run_one); dir=$dir; run_one $name $seconds $out"
    figures "$name" "$out" | tee -a "$summary"
    if [[ $(cat "$out/$name.status") != 0 ]]; then failed=1; fi
  done
  echo >>"$summary"
  return $failed
}

case "${1:-}" in
  build) build ;;
  smoke) smoke "${2:-20}" ;;
  campaign)
    shift
    campaign "$@"
    ;;
  *)
    sed -n '2,13p' "$0" >&2
    exit 2
    ;;
esac
