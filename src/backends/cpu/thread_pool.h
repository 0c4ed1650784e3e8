// A pool of persistent worker threads for the CPU backend.
//
// Threads are created once. Run() hands one function to every thread (the caller is thread 0) and
// returns when all have finished; inside it, Barrier() synchronizes the team, so a whole graph
// segment runs in one Run() with a barrier between ops (one wake-up per segment, as ggml does).
// Waiting spins briefly (an op boundary is usually microseconds away) and then blocks, so idle or
// oversubscribed workers do not burn a core.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace dizuo::cpu {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);  // threads >= 1, including the caller
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return size_; }

  // Calls job(thread_index) on every thread, index 0 on the calling thread; returns when all calls
  // have returned. Not reentrant. `job` must not throw.
  void Run(const std::function<void(int)>& job);

  // Waits until every thread of the current Run() has reached the barrier. Only valid inside Run().
  void Barrier();

 private:
  void WorkerLoop(int index);

  const int size_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* job_ = nullptr;
  // Incremented once per Run(); workers wait for it to change.
  alignas(64) std::atomic<uint32_t> generation_{0};
  // Workers still running the current job.
  alignas(64) std::atomic<int> running_{0};
  // Barrier: threads arrived in the current phase, and the phase count they wait on.
  alignas(64) std::atomic<int> arrived_{0};
  alignas(64) std::atomic<uint32_t> phase_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace dizuo::cpu
