#include "common/metrics.h"

#include <cstdio>
#include <sstream>

namespace sb {
namespace {

std::string format_double(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

// Label values are escaped as the exposition format asks: backslash, quote, newline.
std::string escape_label(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(bounds_.size() + 1) {}

void Histogram::observe(double seconds) {
  std::size_t i = 0;
  while (i < bounds_.size() && seconds > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_nanos_.fetch_add(static_cast<std::uint64_t>(seconds * 1e9), std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.bounds = bounds_;
  std::uint64_t running = 0;
  for (const auto& b : buckets_) {
    running += b.load(std::memory_order_relaxed);
    s.cumulative.push_back(running);
  }
  s.count = running;
  s.sum = static_cast<double>(sum_nanos_.load(std::memory_order_relaxed)) / 1e9;
  return s;
}

std::vector<double> Histogram::latency_bounds() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10};
}

CounterFamily::CounterFamily(std::vector<std::string> label_names)
    : label_names_(std::move(label_names)) {}

Counter& CounterFamily::with(const std::vector<std::string>& label_values) {
  std::lock_guard lock(mutex_);
  return counters_[label_values];
}

std::vector<std::pair<std::vector<std::string>, std::uint64_t>> CounterFamily::values() const {
  std::lock_guard lock(mutex_);
  std::vector<std::pair<std::vector<std::string>, std::uint64_t>> out;
  for (const auto& [labels, counter] : counters_) out.emplace_back(labels, counter.value());
  return out;
}

Counter& MetricsRegistry::counter(const std::string& name, const std::string& help) {
  std::lock_guard lock(mutex_);
  auto& c = counters_.emplace_back();
  entries_.push_back({name, help, "counter", &c});
  return c;
}

Gauge& MetricsRegistry::gauge(const std::string& name, const std::string& help) {
  std::lock_guard lock(mutex_);
  auto& g = gauges_.emplace_back();
  entries_.push_back({name, help, "gauge", nullptr, &g});
  return g;
}

Histogram& MetricsRegistry::histogram(const std::string& name, const std::string& help,
                                      std::vector<double> bounds) {
  std::lock_guard lock(mutex_);
  auto& h = histograms_.emplace_back(std::move(bounds));
  entries_.push_back({name, help, "histogram", nullptr, nullptr, &h});
  return h;
}

CounterFamily& MetricsRegistry::counter_family(const std::string& name, const std::string& help,
                                               std::vector<std::string> label_names) {
  std::lock_guard lock(mutex_);
  auto& f = families_.emplace_back(std::move(label_names));
  entries_.push_back({name, help, "counter", nullptr, nullptr, nullptr, &f});
  return f;
}

void MetricsRegistry::computed_gauge(const std::string& name, const std::string& help,
                                     std::function<double()> read) {
  std::lock_guard lock(mutex_);
  Entry e{name, help, "gauge"};
  e.computed = std::move(read);
  entries_.push_back(std::move(e));
}

std::string MetricsRegistry::render() const {
  std::lock_guard lock(mutex_);
  std::ostringstream out;
  for (const auto& e : entries_) {
    out << "# HELP " << e.name << ' ' << e.help << "\n# TYPE " << e.name << ' ' << e.type << '\n';
    if (e.counter) {
      out << e.name << ' ' << e.counter->value() << '\n';
    } else if (e.gauge) {
      out << e.name << ' ' << e.gauge->value() << '\n';
    } else if (e.computed) {
      out << e.name << ' ' << format_double(e.computed()) << '\n';
    } else if (e.family) {
      const auto& names = e.family->label_names();
      for (const auto& [values, count] : e.family->values()) {
        out << e.name << '{';
        for (std::size_t i = 0; i < names.size() && i < values.size(); ++i) {
          if (i) out << ',';
          out << names[i] << "=\"" << escape_label(values[i]) << '"';
        }
        out << "} " << count << '\n';
      }
    } else if (e.histogram) {
      auto s = e.histogram->snapshot();
      for (std::size_t i = 0; i < s.bounds.size(); ++i)
        out << e.name << "_bucket{le=\"" << format_double(s.bounds[i]) << "\"} " << s.cumulative[i]
            << '\n';
      out << e.name << "_bucket{le=\"+Inf\"} " << s.cumulative.back() << '\n';
      out << e.name << "_sum " << format_double(s.sum) << '\n';
      out << e.name << "_count " << s.count << '\n';
    }
  }
  return out.str();
}

}  // namespace sb
