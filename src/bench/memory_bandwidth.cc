#include "bench/memory_bandwidth.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
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
  const size_t map_bytes = n_words * sizeof(uint64_t);
  // Anonymous memory with the huge-page hint, as the cpu backend holds its weight copies: the
  // ceiling is for the fastest way this machine can hold and read weights. On the 2-vCPU EPYC Zen 4
  // VM, a standalone copy of this loop read 35.8 GB/s with one thread from huge pages against
  // 33.7 GB/s from 4 KB pages (best of 7), and the q4_K generation kernel streamed up to 34.5 GB/s
  // from its copy (cpu_kernels_bench BM_GemvDram), above what the probe read from 4 KB pages.
  void* mapped =
      mmap(nullptr, map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) {
    Fail("bandwidth probe: cannot allocate {} MiB: {}", options.bytes >> 20, std::strerror(errno));
  }
  madvise(mapped, map_bytes, MADV_HUGEPAGE);  // a hint; without it the probe reads 4 KB pages
  const std::unique_ptr<void, std::function<void(void*)>> unmap(
      mapped, [map_bytes](void* p) { munmap(p, map_bytes); });
  auto* buffer = static_cast<uint64_t*>(mapped);
  // Distinct values in every page, so that no page is shared (zero page) or compressed away.
  for (size_t i = 0; i < n_words; ++i) buffer[i] = i * 0x9E3779B97F4A7C15ull;

  const int threads = options.threads;
  const size_t per_thread = (n_words / static_cast<size_t>(threads)) & ~size_t{7};
  std::atomic<int> ready{0};
  std::atomic<int> go{0};  // pass number the workers may start
  std::atomic<int> done{0};
  std::atomic<uint64_t> sink{0};
  auto read_slice = [&](int t) {
    const uint64_t* slice = buffer + static_cast<size_t>(t) * per_thread;
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
