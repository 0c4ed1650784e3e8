#include "backends/cpu/cpu_backend.h"

#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "backends/cpu/cpu_features.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/ops.h"
#include "backends/cpu/thread_pool.h"
#include "backends/host_buffer.h"
#include "core/error.h"
#include "core/quant.h"

namespace dizuo {
namespace cpu {

ScratchNeeds ScratchFor(const Node& node, const RepackedWeight* weight) {
  switch (node.op) {
    case Op::kMatMul:
      return MatMulScratch(node, weight);
    case Op::kGetRows:  // a repacked table's row is unpacked into the thread's scratch
      return {.thread_floats = weight == nullptr ? 0 : (node.src[0]->nb[1] + 3) / 4};
    case Op::kRope:
      return RopeScratch(node);
    case Op::kAttention:
      return AttentionScratch(node);
    default:
      return {};
  }
}

namespace {

bool IsF32(const Tensor* t) { return t != nullptr && t->type == DType::F32; }
bool IsI32(const Tensor* t) { return t != nullptr && t->type == DType::I32; }
bool IsCache(const Tensor* t) {
  return t != nullptr && (t->type == DType::F32 || t->type == DType::F16);
}
bool RowsPacked(const Tensor* t) {
  return t == nullptr || t->nb[0] == static_cast<uint64_t>(Traits(t->type).type_size);
}

// The bytes a tensor's elements occupy, [begin, end) (for views: from the first to past the last
// element's row); empty for a tensor without data or elements.
struct ByteSpan {
  uintptr_t begin = 0, end = 0;
  bool Overlaps(const ByteSpan& o) const { return begin < o.end && o.begin < end; }
};

ByteSpan SpanOf(const Tensor* t) {
  if (t == nullptr || t->data == nullptr) return {};
  uint64_t extent = t->row_bytes();
  for (int d = 0; d < kMaxDims; ++d) {
    if (t->ne[d] <= 0) return {};
    if (d > 0) extent += static_cast<uint64_t>(t->ne[d] - 1) * t->nb[d];
  }
  const auto begin = reinterpret_cast<uintptr_t>(t->data);
  return {begin, begin + extent};
}

// Which nodes must be followed by a barrier. Consecutive nodes run without one between them (each
// thread goes straight on to the next) when none reads or writes bytes that another node of the
// run writes, and at most one of them uses the shared scratch area, which every node reuses.
// Llama-style layers have such runs in their 17 nodes: the K, V and Q projections of one
// normalized input (model/forward.cc ProjectKVQ puts them next to each other: llama 125M
// generation 183 → 159 barriers per token), the cache stores, the gate and up projections.
// Measured on 2-core EPYC, 125M llama Q4_0 tg128 with 2 threads, 3 alternations: +0.1% to +2.4%
// (within noise); a barrier costs ~0.2 µs here.
// uses_shared[i]: node i needs the shared scratch (ScratchFor).
std::vector<uint8_t> BarriersAfter(std::span<const Node> nodes,
                                   const std::vector<uint8_t>& uses_shared) {
  std::vector<uint8_t> barrier(nodes.size(), 1);
  std::vector<ByteSpan> reads, writes;  // of the current run of nodes without barriers
  bool run_uses_shared = false;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& node = nodes[i];
    const ByteSpan out = SpanOf(node.out);
    bool conflict = uses_shared[i] && run_uses_shared;
    for (const ByteSpan& w : writes) conflict = conflict || w.Overlaps(out);
    for (const ByteSpan& r : reads) conflict = conflict || r.Overlaps(out);
    for (const Tensor* src : node.src) {
      const ByteSpan in = SpanOf(src);
      for (const ByteSpan& w : writes) conflict = conflict || w.Overlaps(in);
    }
    if (conflict) {
      barrier[i - 1] = 1;  // i > 0: the run is empty at i == 0
      reads.clear();
      writes.clear();
      run_uses_shared = false;
    } else if (i > 0) {
      barrier[i - 1] = 0;
    }
    writes.push_back(out);
    for (const Tensor* src : node.src) reads.push_back(SpanOf(src));
    run_uses_shared = run_uses_shared || uses_shared[i];
  }
  return barrier;
}

void Dispatch(const Node& node, const OpContext& ctx) {
  switch (node.op) {
    case Op::kGetRows:
      return GetRows(node, ctx);
    case Op::kMatMul:
      return MatMul(node, ctx);
    case Op::kAdd:
    case Op::kMul:
      return Binary(node, ctx);
    case Op::kScale:
      return Scale(node, ctx);
    case Op::kRmsNorm:
      return RmsNorm(node, ctx);
    case Op::kRope:
      return Rope(node, ctx);
    case Op::kGlu:
      return Glu(node, ctx);
    case Op::kAttention:
      return Attention(node, ctx);
    case Op::kStoreKV:
      return StoreKV(node, ctx);
  }
}

// Index inputs come from callers (token ids from users, cells from the engine): checked here, on
// the calling thread, so a bad value is an Error and never an out-of-bounds access in a kernel.
void CheckIndices(const Node& node) {
  if (node.op == Op::kGetRows) {
    const Tensor& ids = *node.src[1];
    const auto* id = static_cast<const int32_t*>(ids.data);
    for (int64_t t = 0; t < ids.ne[0]; ++t) {
      if (id[t] < 0 || id[t] >= node.src[0]->ne[1]) {
        Fail("GET_ROWS: id {} at index {} is outside table '{}' of {} rows", id[t], t,
             node.src[0]->name, node.src[0]->ne[1]);
      }
    }
  } else if (node.op == Op::kStoreKV) {
    const Tensor& cells = *node.src[1];
    const auto* cell = static_cast<const int32_t*>(cells.data);
    for (int64_t t = 0; t < cells.ne[0]; ++t) {
      if (cell[t] < 0 || cell[t] >= node.out->ne[2]) {
        Fail("STORE_KV: cell {} at index {} is outside cache '{}' of {} cells", cell[t], t,
             node.out->name, node.out->ne[2]);
      }
    }
  }
}

class CpuBackend;

// The calling thread runs only on CPU time no other thread wants (SCHED_IDLE), so copies made in
// the background take the gaps between and around tokens instead of the compute threads' time
// (and all of it while FinishPreparing waits). llama 1b Q4_K_M, `dizuo run -n 256`, 2 threads on
// the 2-vCPU EPYC, generation t/s in three alternated rounds: 49.7 / 59.0 / 58.6 with it, 51.6 /
// 53.1 / 46.6 at normal priority, 55.4 / 48.9 / 55.7 with --no-repack. Best effort: where the
// policy is refused the thread keeps its priority.
void LowerThreadPriority() {
  sched_param param{};
  param.sched_priority = 0;
  pthread_setschedparam(pthread_self(), SCHED_IDLE, &param);
}

// A weight's copy in the kernel table's own layout (kernels.h RepackFns), in anonymous memory of
// its own (page-aligned; transparent huge pages where the kernel gives them). Destroying it makes
// the backend read the weight where it is again. The constructor throws dizuo::Error when the
// memory cannot be had.
class RepackedBuffer final : public Buffer {
 public:
  RepackedBuffer(CpuBackend& backend, const Tensor& weight, const RepackFns& fns);
  ~RepackedBuffer() override;
  Backend& backend() const override;
  uint64_t size() const override { return size_; }
  void* host_data() const override { return data_; }
  const RepackedWeight& view() const { return view_; }

 private:
  CpuBackend& backend_;
  const void* key_;
  void* data_ = nullptr;
  uint64_t size_ = 0;
  RepackedWeight view_;
};

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const BackendOptions& options)
      : kernels_(SelectKernels()), pool_(ThreadCount(options)) {
    const CpuFeatures& cpu = HostCpu();
    info_.name = "cpu";
    info_.description = fmt::format("{}, {} thread{}, {}", cpu.model, pool_.size(),
                                    pool_.size() == 1 ? "" : "s", kernels_.isa);
    info_.host_memory = true;
  }

  const DeviceInfo& device() const override { return info_; }

  std::unique_ptr<Buffer> Allocate(uint64_t bytes) override {
    return std::make_unique<HostBuffer>(*this, bytes);
  }
  void Upload(const Tensor& tensor, const void* host, uint64_t offset, uint64_t size) override {
    HostUpload(tensor, host, offset, size);
  }
  void Download(const Tensor& tensor, void* host, uint64_t offset, uint64_t size) override {
    HostDownload(tensor, host, offset, size);
  }

  bool Supports(const Node& node) const override {
    if (node.out == nullptr || !RowsPacked(node.out)) return false;
    for (const Tensor* t : node.src) {
      if (!RowsPacked(t)) return false;
    }
    const auto& s = node.src;
    switch (node.op) {
      case Op::kGetRows:
        return s[0] && CanConvert(s[0]->type) && IsI32(s[1]) && IsF32(node.out);
      case Op::kMatMul:
        return IsF32(s[0]) && s[1] && kernels_.dot[static_cast<size_t>(s[1]->type)] != nullptr &&
               IsF32(node.out);
      case Op::kAdd:
      case Op::kMul:
      case Op::kGlu:
        return IsF32(s[0]) && IsF32(s[1]) && IsF32(node.out);
      case Op::kScale:
        return IsF32(s[0]) && IsF32(node.out);
      case Op::kRmsNorm:
        return IsF32(s[0]) && (s[1] == nullptr || (IsF32(s[1]) && s[1]->contiguous())) &&
               IsF32(node.out);
      case Op::kRope:
        return IsF32(s[0]) && IsI32(s[1]) &&
               (s[2] == nullptr || (IsF32(s[2]) && s[2]->contiguous()));
      case Op::kAttention:
        return IsF32(s[0]) && IsCache(s[1]) && IsCache(s[2]) && IsI32(s[3]) && IsI32(s[4]) &&
               s[3]->contiguous() && s[4]->contiguous() && IsF32(node.out);
      case Op::kStoreKV:
        return IsCache(node.out) && IsF32(s[0]) && s[0]->contiguous() && IsI32(s[1]) &&
               s[1]->contiguous();
    }
    return false;
  }

  // The copy is made in the background by one worker thread (with helpers on the cores the
  // compute pool leaves free), in the model's order (largest first; CopyWeights says when the
  // worker takes the smallest instead), so a load returns at once and the first tokens read the
  // file's layout until each copy is complete: making the copies is bound by the kernel zeroing
  // their fresh pages (74% of a 1-thread load of llama 1b Q4_0 on a 2-vCPU EPYC VM; 0.4-1.3 s
  // for the 608 MiB of llama 1b Q4_K_M).
  std::unique_ptr<Buffer> PrepareWeight(const Tensor& weight, WeightCopy options) override {
    const RepackFns& fns = kernels_.repacked[static_cast<size_t>(weight.type)];
    if (fns.repack == nullptr || (options.get_rows && fns.unpack_row == nullptr) ||
        weight.data == nullptr || !weight.contiguous() || weight.ne[2] != 1 || weight.ne[3] != 1 ||
        weight.elements() == 0 || weight.ne[0] % Traits(weight.type).block_size != 0 ||
        fns.row_bytes(weight.ne[0]) == 0 || repacked_.count(weight.data) != 0) {
      return nullptr;
    }
    std::unique_ptr<RepackedBuffer> buffer;
    try {
      buffer = std::make_unique<RepackedBuffer>(*this, weight, fns);
    } catch (const Error&) {
      return nullptr;  // no memory for a copy: the weight is read where it is, as without one
    }
    std::lock_guard lock(mutex_);
    repacked_[weight.data] = {buffer.get(), weight.type,      weight.ne[0],
                              weight.ne[1], options.get_rows, false};
    jobs_.push_back({weight.data, buffer.get(), static_cast<const uint8_t*>(weight.data),
                     weight.nb[1], weight.ne[0], weight.ne[1], &fns, std::move(options.copied),
                     std::move(options.part_copied)});
    if (!worker_.joinable()) {
      worker_ = std::jthread([this] {
        LowerThreadPriority();
        CopyWeights();
      });
    }
    work_.notify_all();
    return buffer;
  }

  // The calling thread copies queued weights too, at its own priority: the worker's SCHED_IDLE
  // would leave a busy machine's waiter waiting for idle time.
  void FinishPreparing() override {
    std::unique_lock lock(mutex_);
    while (!jobs_.empty()) {
      CopyJob job = std::move(jobs_.front());
      jobs_.pop_front();
      RunJob(lock, std::move(job), /*gated=*/false);
    }
    done_.wait(lock, [&] { return copying_.empty(); });
    // Callbacks deferred past a Compute run at its end; none is left once Compute has returned.
  }

  // A copy being destroyed: its job is dropped if not started, stopped if running.
  void Forget(const void* key) {
    std::unique_lock lock(mutex_);
    std::erase_if(jobs_, [&](const CopyJob& job) { return job.key == key; });
    if (const auto it = copying_.find(key); it != copying_.end()) {
      it->second->store(true, std::memory_order_relaxed);
      idle_.notify_all();
    }
    done_.wait(lock, [&] { return copying_.count(key) == 0; });
    repacked_.erase(key);
  }

  ~CpuBackend() override {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
      work_.notify_all();
      idle_.notify_all();
    }
    if (worker_.joinable()) worker_.join();
  }

  void Compute(std::span<const Node> nodes) override {
    if (nodes.empty()) return;
    // MATMUL weights (and GET_ROWS tables) this backend repacked at load are read from their
    // copies once complete. Copies completing during this Compute are used from the next one on;
    // their `copied` callbacks wait for this one's end (it may still read their originals).
    std::vector<const RepackedWeight*> weights(nodes.size());
    {
      std::lock_guard lock(mutex_);
      computing_ = true;
      for (size_t i = 0; i < nodes.size() && !repacked_.empty(); ++i) {
        const bool get_rows = nodes[i].op == Op::kGetRows;
        if (nodes[i].op != Op::kMatMul && !get_rows) continue;
        const Tensor& w = *nodes[i].src[get_rows ? 0 : 1];
        const auto it = repacked_.find(w.data);
        if (it != repacked_.end() && it->second.ready && (!get_rows || it->second.get_rows) &&
            it->second.Matches(w)) {
          weights[i] = &it->second.copy->view();
        }
      }
    }
    struct EndOfCompute {
      CpuBackend& backend;
      ~EndOfCompute() { backend.RunDeferredCallbacks(); }
    } end_of_compute{*this};
    size_t shared_bytes = 0, thread_floats = 0;
    std::vector<uint8_t> uses_shared(nodes.size());
    for (size_t i = 0; i < nodes.size(); ++i) {
      const Node& node = nodes[i];
      DZ_ASSERT(Supports(node));
      CheckIndices(node);
      const ScratchNeeds needs = ScratchFor(node, weights[i]);
      uses_shared[i] = needs.shared_bytes > 0;
      shared_bytes = std::max(shared_bytes, needs.shared_bytes);
      thread_floats = std::max(thread_floats, needs.thread_floats);
    }
    // Per-thread areas start on their own cache lines.
    thread_floats = (thread_floats + 15) / 16 * 16;
    if (shared_.size() < shared_bytes) shared_.resize(shared_bytes);
    const size_t thread_total = thread_floats * static_cast<size_t>(pool_.size());
    if (per_thread_.size() < thread_total) per_thread_.resize(thread_total);
    const size_t nth = static_cast<size_t>(pool_.size());
    counters_ = std::make_unique<std::atomic<int64_t>[]>(nodes.size());  // value-initialized: 0
    owned_ = std::make_unique<WorkCounter[]>(nodes.size() * nth);
    const std::vector<uint8_t> barrier_after = BarriersAfter(nodes, uses_shared);

    pool_.Run([&](int ith) {
      OpContext ctx;
      ctx.ith = ith;
      ctx.nth = pool_.size();
      ctx.pool = &pool_;
      ctx.kernels = &kernels_;
      ctx.shared_scratch = shared_.data();
      ctx.thread_scratch = per_thread_.data() + thread_floats * static_cast<size_t>(ith);
      for (size_t i = 0; i < nodes.size(); ++i) {
        ctx.counter = &counters_[i];
        ctx.owned = &owned_[i * nth];
        ctx.weight = weights[i];
        Dispatch(nodes[i], ctx);
        if (i + 1 < nodes.size() && barrier_after[i]) pool_.Barrier();
      }
    });
  }

 private:
  static constexpr int kMaxThreads = 1024;

  static int ThreadCount(const BackendOptions& options) {
    if (options.threads < 0) Fail("cpu backend: thread count {} is negative", options.threads);
    if (options.threads > kMaxThreads) {
      Fail("cpu backend: {} threads requested, at most {} supported", options.threads, kMaxThreads);
    }
    if (options.threads > 0) return options.threads;
    const unsigned hw = std::thread::hardware_concurrency();
    return hw == 0 ? 1 : static_cast<int>(hw);
  }

  struct Repacked {
    const RepackedBuffer* copy;
    DType type;
    int64_t ne0, ne1;
    bool get_rows;  // GET_ROWS reads the copy too (WeightCopy::get_rows)
    bool ready;     // the copy is complete (guarded by mutex_)
    bool Matches(const Tensor& w) const {
      return w.type == type && w.ne[0] == ne0 && w.ne[1] == ne1 && w.ne[2] == 1 && w.ne[3] == 1 &&
             w.contiguous();
    }
  };

  // A weight to copy into its RepackedBuffer (PrepareWeight).
  struct CopyJob {
    const void* key;
    RepackedBuffer* buffer;
    const uint8_t* src;
    uint64_t src_stride;
    int64_t k, rows;
    const RepackFns* fns;
    std::function<void()> copied;
    std::function<void(uint64_t, uint64_t)> part_copied;
  };

  // The worker thread: copies the queued weights in order until the backend is destroyed.
  void CopyWeights() {
    std::unique_lock lock(mutex_);
    while (true) {
      work_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
      if (stop_) return;
      const bool gated = pool_.size() >= Cores();
      // A gated worker takes the smallest copy next (FinishPreparing keeps the model's order,
      // largest first). It progresses only in the gaps between forward passes, where every file
      // page is resident and a copy in progress holds its new pages beside them: small copies
      // complete there and let their file pages go, where the largest first held its partial
      // copy for the whole run (llama 1b f16, `dizuo run -n 256`: +117 MiB of peak RSS for the
      // 125 MiB output layer).
      auto next = jobs_.begin();
      if (gated) {
        next = std::min_element(jobs_.begin(), jobs_.end(), [](const CopyJob& a, const CopyJob& b) {
          return a.buffer->size() < b.buffer->size();
        });
      }
      CopyJob job = std::move(*next);
      jobs_.erase(next);
      RunJob(lock, std::move(job), gated);
    }
  }

  static int Cores() { return std::max(1, static_cast<int>(std::thread::hardware_concurrency())); }

  // Until no Compute runs (or the copy is stopped, or the backend is going).
  void WaitWhileComputing(const std::atomic<bool>& cancel) {
    std::unique_lock lock(mutex_);
    idle_.wait(lock,
               [&] { return !computing_ || stop_ || cancel.load(std::memory_order_relaxed); });
  }

  // Copies one dequeued weight (`lock` held on entry and exit, released while copying), then
  // marks it ready and runs or defers its callback, unless Forget stopped it.
  void RunJob(std::unique_lock<std::mutex>& lock, CopyJob job, bool gated) {
    auto cancel = std::make_shared<std::atomic<bool>>(false);
    copying_[job.key] = cancel;
    lock.unlock();
    Copy(job, *cancel, gated);
    lock.lock();
    if (!cancel->load(std::memory_order_relaxed)) {
      repacked_.at(job.key).ready = true;
      if (job.copied) {
        if (computing_) {
          deferred_.push_back(std::move(job.copied));
        } else {
          lock.unlock();
          job.copied();
          lock.lock();
        }
      }
    }
    copying_.erase(job.key);  // after the callback: FinishPreparing returns once it has run
    done_.notify_all();
  }

  // Rows split across the worker and helpers on the cores the compute pool leaves free (at most
  // kMaxCopyThreads in all, for weights of at least kMinTeamBytes: a thread start costs tens of
  // microseconds). The copy is a byte shuffle, bound by the page faults of its new memory.
  //
  // With `gated` (the worker, when the compute pool has a thread on every core) each step waits
  // until no Compute runs: SCHED_IDLE alone did not keep the copies out of the compute threads'
  // way there. On the 2-vCPU EPYC VM, `dizuo run -n 256` on llama 1b f16 with 2 threads ran its
  // whole generation at 19.5-19.9 tokens/s while the worker copied the 2 GB in the gaps, against
  // 22.7-22.8 without copies (three alternated runs each): first touches of fresh memory run at
  // 0.5 GB/s there (about 4 ms per 2 MB huge page), presumably in the hypervisor, where the guest
  // cannot preempt them.
  void Copy(const CopyJob& job, const std::atomic<bool>& cancel, bool gated) {
    auto* dst = static_cast<uint8_t*>(job.buffer->host_data());
    const size_t stride = job.buffer->view().stride;
    // In steps of kCopyRows rows, so that a copy whose buffer is being destroyed (Forget sets
    // `cancel`) stops within one step instead of finishing first: at exit after a short run the
    // wait for a 54 MB copy in progress was most of the 0.5 s the repack added.
    constexpr int64_t kCopyRows = 64;
    // part_copied is told of the copied rows' source bytes in pieces of about kPartBytes (and at
    // the end of each thread's rows): each call is a madvise for the model.
    constexpr uint64_t kPartBytes = uint64_t{1} << 20;
    // Whole groups of rows per thread, for layouts that store rows in groups (RepackFns::row_group;
    // kCopyRows is a multiple of every group size).
    const int64_t group = job.fns->row_group != nullptr ? job.fns->row_group(job.k) : 1;
    DZ_ASSERT(group >= 1 && kCopyRows % group == 0);
    auto part = [&](int ith, int nth) {
      int64_t begin, end;
      SplitRange((job.rows + group - 1) / group, ith, nth, &begin, &end);
      begin *= group;
      end = std::min(job.rows, end * group);
      int64_t told = begin;  // rows before this one were passed to part_copied
      for (int64_t r = begin; r < end && !cancel.load(std::memory_order_relaxed); r += kCopyRows) {
        if (gated) WaitWhileComputing(cancel);
        const int64_t rows = std::min(kCopyRows, end - r);
        job.fns->repack(job.k, job.src + r * job.src_stride, job.src_stride, rows,
                        dst + r * stride);
        const int64_t copied_end = r + rows;
        if (job.part_copied &&
            (copied_end == end ||
             static_cast<uint64_t>(copied_end - told) * job.src_stride >= kPartBytes)) {
          job.part_copied(static_cast<uint64_t>(told) * job.src_stride,
                          static_cast<uint64_t>(copied_end - told) * job.src_stride);
          told = copied_end;
        }
      }
    };
    constexpr int kMaxCopyThreads = 16;
    constexpr uint64_t kMinTeamBytes = uint64_t{1} << 20;
    const int team = std::clamp(Cores() - pool_.size(), 1, kMaxCopyThreads);
    if (team == 1 || job.buffer->size() < kMinTeamBytes) {
      part(0, 1);
      return;
    }
    std::vector<std::jthread> helpers;
    for (int i = 1; i < team; ++i) {
      helpers.emplace_back([&part, i, team] {
        LowerThreadPriority();
        part(i, team);
      });
    }
    part(0, team);
  }

  // At the end of each Compute: the `copied` callbacks of copies completed while it ran.
  void RunDeferredCallbacks() {
    std::vector<std::function<void()>> callbacks;
    {
      std::lock_guard lock(mutex_);
      computing_ = false;
      callbacks.swap(deferred_);
    }
    idle_.notify_all();
    for (auto& callback : callbacks) callback();
  }

  const Kernels& kernels_;
  ThreadPool pool_;
  // Guards repacked_ (insertions, erasures, ready), the job queue and the flags below; Compute
  // reads repacked_ under it once per call.
  std::mutex mutex_;
  std::condition_variable work_;  // a job was queued, or stop_
  std::condition_variable done_;  // a job finished or was dropped
  std::deque<CopyJob> jobs_;
  // The jobs being copied (by the worker, or by a FinishPreparing caller), with the flag that
  // stops each (its buffer is going).
  std::unordered_map<const void*, std::shared_ptr<std::atomic<bool>>> copying_;
  bool computing_ = false;
  std::condition_variable idle_;  // computing_ went false
  bool stop_ = false;
  std::vector<std::function<void()>> deferred_;
  std::jthread worker_;
  std::unordered_map<const void*, Repacked> repacked_;  // by the original weight's data address
  DeviceInfo info_;
  std::vector<uint8_t> shared_;
  std::vector<float> per_thread_;
  std::unique_ptr<std::atomic<int64_t>[]> counters_;
  std::unique_ptr<WorkCounter[]> owned_;
};

RepackedBuffer::RepackedBuffer(CpuBackend& backend, const Tensor& weight, const RepackFns& fns)
    : backend_(backend), key_(weight.data) {
  view_.fns = &fns;
  view_.stride = fns.row_bytes(weight.ne[0]);
  size_ = view_.stride * static_cast<uint64_t>(weight.ne[1]);
  void* p = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    Fail("cpu backend: cannot allocate {} bytes to repack weight '{}': {}", size_, weight.name,
         std::strerror(errno));
  }
  // Huge pages: llama 1b Q4_K_M generation 1.02-1.06× against the same copies in 4 KB pages (f16
  // 1.00-1.02×) on the 2-vCPU EPYC VM. A hint, so failure is harmless.
  madvise(p, size_, MADV_HUGEPAGE);
  data_ = p;
  view_.data = static_cast<const uint8_t*>(p);
}

RepackedBuffer::~RepackedBuffer() {
  backend_.Forget(key_);
  munmap(data_, size_);
}

Backend& RepackedBuffer::backend() const { return backend_; }

}  // namespace
}  // namespace cpu

std::unique_ptr<Backend> CreateCpuBackend(const BackendOptions& options) {
  return std::make_unique<cpu::CpuBackend>(options);
}

}  // namespace dizuo
