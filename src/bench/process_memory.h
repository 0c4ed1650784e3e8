// Resident memory of this process (Linux; elsewhere the peak comes from getrusage and cannot be
// reset).
#pragma once

#include <cstdint>

namespace dizuo::bench {

// Peak resident set size in bytes since the process started or the last ResetPeakResident().
uint64_t PeakResidentBytes();
// Current resident set size in bytes (0 when unknown).
uint64_t CurrentResidentBytes();
// Restarts peak tracking from the current resident size. Returns false when the system does not
// allow it (the peak then stays process-wide).
bool ResetPeakResident();

}  // namespace dizuo::bench
