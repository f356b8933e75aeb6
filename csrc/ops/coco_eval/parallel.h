// A torch-free parallel_for for the evaluation cores, which are also built into the torch-free
// module knet._eval_C. Threads: OMP_NUM_THREADS / KNET_NUM_THREADS if set, else all cores.
// Work is handed out in `grain`-sized blocks from an atomic counter (dynamic balance).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace knet {

inline int num_threads() {
  for (const char* name : {"KNET_NUM_THREADS", "OMP_NUM_THREADS"}) {
    if (const char* v = std::getenv(name)) {
      const int n = std::atoi(v);
      if (n > 0) return n;
    }
  }
  const unsigned hc = std::thread::hardware_concurrency();
  return hc ? static_cast<int>(hc) : 1;
}

// fn(block_begin, block_end) over [begin, end); exceptions are rethrown on the caller.
template <typename F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, const F& fn) {
  if (end <= begin) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t blocks = (end - begin + grain - 1) / grain;
  const int nt = static_cast<int>(std::min<int64_t>(num_threads(), blocks));
  if (nt <= 1) {
    fn(begin, end);
    return;
  }
  std::atomic<int64_t> next{0};
  std::exception_ptr error;
  std::mutex mu;
  auto work = [&]() {
    try {
      for (;;) {
        const int64_t b = next.fetch_add(1);
        if (b >= blocks) break;
        const int64_t lo = begin + b * grain;
        fn(lo, std::min(end, lo + grain));
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      if (!error) error = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < nt; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace knet
