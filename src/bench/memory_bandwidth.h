// A memory read-bandwidth probe: the physical ceiling for token generation, which reads every
// weight once per token.
#pragma once

#include <cstddef>

namespace dizuo::bench {

struct BandwidthOptions {
  int threads = 1;
  // Buffer read by all threads together; far larger than the last-level cache so that reads come
  // from DRAM.
  size_t bytes = size_t{512} << 20;
  int repeats = 7;  // the best pass counts (least disturbed by other processes)
};

// Bytes per second of a streaming read of one buffer split evenly between `threads` threads,
// best of `repeats` passes. Throws dizuo::Error on a bad option or when the buffer cannot be
// allocated.
double MeasureReadBandwidth(const BandwidthOptions& options);

}  // namespace dizuo::bench
