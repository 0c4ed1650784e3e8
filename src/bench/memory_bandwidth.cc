#include "bench/memory_bandwidth.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <thread>
#include <vector>

#include "core/error.h"

namespace dizuo::bench {
namespace {

// Sums 64-bit words with independent accumulators so that the loop is limited by loads, not by
// an add chain; the compiler vectorizes it. The result is returned so the reads are not removed.
uint64_t SumWords(const uint64_t* words, size_t n) {
  uint64_t acc[8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) acc[k] += words[i + static_cast<size_t>(k)];
  }
  for (; i < n; ++i) acc[0] += words[i];
  uint64_t sum = 0;
  for (uint64_t a : acc) sum += a;
  return sum;
}

}  // namespace

double MeasureReadBandwidth(const BandwidthOptions& options) {
  if (options.threads < 1 || options.threads > 1024) {
    Fail("bandwidth probe: threads must be in 1..1024, not {}", options.threads);
  }
  if (options.repeats < 1) Fail("bandwidth probe: repeats must be >= 1, not {}", options.repeats);
  if (options.bytes < (size_t{1} << 20)) Fail("bandwidth probe: buffer must be at least 1 MiB");
  const size_t n_words = options.bytes / sizeof(uint64_t);
  std::unique_ptr<uint64_t[]> buffer(new (std::nothrow) uint64_t[n_words]);
  if (!buffer) Fail("bandwidth probe: cannot allocate {} MiB", options.bytes >> 20);
  // Distinct values in every page, so that no page is shared (zero page) or compressed away.
  for (size_t i = 0; i < n_words; ++i) buffer[i] = i * 0x9E3779B97F4A7C15ull;

  const int threads = options.threads;
  const size_t per_thread = (n_words / static_cast<size_t>(threads)) & ~size_t{7};
  std::atomic<int> ready{0};
  std::atomic<int> go{0};  // pass number the workers may start
  std::atomic<int> done{0};
  std::atomic<uint64_t> sink{0};
  auto read_slice = [&](int t) {
    const uint64_t* slice = buffer.get() + static_cast<size_t>(t) * per_thread;
    sink.fetch_add(SumWords(slice, per_thread), std::memory_order_relaxed);
  };
  // Workers 1..threads-1 spin between passes so that every pass starts all threads together;
  // the calling thread reads slice 0 and times the pass.
  std::vector<std::thread> workers;
  for (int t = 1; t < threads; ++t) {
    workers.emplace_back([&, t] {
      ready.fetch_add(1);
      for (int pass = 1; pass <= options.repeats; ++pass) {
        while (go.load(std::memory_order_acquire) < pass) std::this_thread::yield();
        read_slice(t);
        done.fetch_add(1, std::memory_order_acq_rel);
      }
    });
  }
  while (ready.load() < threads - 1) std::this_thread::yield();
  double best = 0;
  for (int pass = 1; pass <= options.repeats; ++pass) {
    done.store(0);
    const auto start = std::chrono::steady_clock::now();
    go.store(pass, std::memory_order_release);
    read_slice(0);
    while (done.load(std::memory_order_acquire) < threads - 1) std::this_thread::yield();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double bytes = static_cast<double>(per_thread) * threads * sizeof(uint64_t);
    best = std::max(best, bytes / seconds);
  }
  for (std::thread& w : workers) w.join();
  if (sink.load() == 1) std::this_thread::yield();  // keeps the sums observable
  return best;
}

}  // namespace dizuo::bench
