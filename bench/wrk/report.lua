-- Shared by the wrk scripts of bench/api_bench.sh: at the end of a run, prints one line
--   WRK_RESULT requests=N duration_us=N rps=F p50_us=N p90_us=N p99_us=N max_us=N
--              errors_connect=N errors_read=N errors_write=N errors_timeout=N non2xx=N
-- that the script parses (wrk's own human-readable report is printed above it).

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "errors_connect=%d errors_read=%d errors_write=%d errors_timeout=%d non2xx=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.timeout, e.status))
end
