#include "store/write_queue.h"

#include <vector>

namespace sb {

WriteQueue::WriteQueue(std::unique_ptr<Store> store, std::size_t max_batch, CommitObserver observer)
    : store_(std::move(store)), max_batch_(max_batch), observer_(std::move(observer)) {
  thread_ = std::thread([this] { loop(); });
}

WriteQueue::~WriteQueue() { stop(); }

void WriteQueue::enqueue(Job job) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      queue_.push_back(std::move(job));
      wake_.notify_one();
      return;
    }
  }
  job.done(std::make_exception_ptr(StoreError("the store is shutting down")));
}

void WriteQueue::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
    wake_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
}

WriteQueue::Stats WriteQueue::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void WriteQueue::loop() {
  std::vector<Job> batch;
  std::vector<std::function<void()>> ops;
  std::vector<std::exception_ptr> errors;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    ops.clear();
    for (auto& job : batch) ops.emplace_back([&job, this] { job.op(*store_); });
    errors.assign(batch.size(), nullptr);
    auto started = std::chrono::steady_clock::now();
    try {
      store_->atomically(ops, errors);
    } catch (...) {
      for (auto& e : errors) e = std::current_exception();
    }
    auto took = std::chrono::steady_clock::now() - started;
    std::uint64_t failed = 0;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (errors[i]) ++failed;
      batch[i].done(errors[i]);
    }
    {
      std::lock_guard lock(mutex_);
      stats_.commits++;
      stats_.writes += batch.size();
      stats_.failed_writes += failed;
    }
    if (observer_) observer_(batch.size(), took);
    batch.clear();
  }
}

}  // namespace sb
