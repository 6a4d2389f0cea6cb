#pragma once
// A small metrics registry rendered in the Prometheus text format (GET /metrics). Every
// part of the daemon counts its work and failures here (ARCHITECTURE.md, rule 6).
//
// Threading: Counter, Gauge and Histogram are safe from any thread. Register metrics at
// start-up; the returned references stay valid for the registry's lifetime.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace sb {

class Counter {
 public:
  void inc(std::uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

class Gauge {
 public:
  void set(std::int64_t v) { value_.store(v, std::memory_order_relaxed); }
  void add(std::int64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  std::int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> value_{0};
};

// Cumulative histogram of durations in seconds with fixed bucket bounds.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double seconds);
  void observe(std::chrono::nanoseconds d) { observe(std::chrono::duration<double>(d).count()); }

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<std::uint64_t> cumulative;  // one per bound, then +Inf
    double sum = 0;
    std::uint64_t count = 0;
  };
  Snapshot snapshot() const;

  // 50 µs .. 10 s, roughly ×2.5 per step: right for request and store latencies.
  static std::vector<double> latency_bounds();

 private:
  std::vector<double> bounds_;
  std::vector<std::atomic<std::uint64_t>> buckets_;  // non-cumulative, last is +Inf
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_nanos_{0};
};

// A family of counters told apart by label values, e.g. requests by route and status.
class CounterFamily {
 public:
  explicit CounterFamily(std::vector<std::string> label_names);
  Counter& with(const std::vector<std::string>& label_values);
  std::vector<std::pair<std::vector<std::string>, std::uint64_t>> values() const;
  const std::vector<std::string>& label_names() const { return label_names_; }

 private:
  std::vector<std::string> label_names_;
  mutable std::mutex mutex_;
  std::map<std::vector<std::string>, Counter> counters_;
};

class MetricsRegistry {
 public:
  Counter& counter(const std::string& name, const std::string& help);
  Gauge& gauge(const std::string& name, const std::string& help);
  Histogram& histogram(const std::string& name, const std::string& help,
                       std::vector<double> bounds = Histogram::latency_bounds());
  CounterFamily& counter_family(const std::string& name, const std::string& help,
                                std::vector<std::string> label_names);
  // A gauge whose value is read when rendering (e.g. counts from the store).
  void computed_gauge(const std::string& name, const std::string& help,
                      std::function<double()> read);

  // The Prometheus text exposition format, version 0.0.4.
  std::string render() const;

 private:
  struct Entry {
    std::string name, help, type;
    Counter* counter = nullptr;
    Gauge* gauge = nullptr;
    Histogram* histogram = nullptr;
    CounterFamily* family = nullptr;
    std::function<double()> computed;
  };
  mutable std::mutex mutex_;
  std::vector<Entry> entries_;
  std::deque<Counter> counters_;
  std::deque<Gauge> gauges_;
  std::deque<Histogram> histograms_;
  std::deque<CounterFamily> families_;
};

}  // namespace sb
