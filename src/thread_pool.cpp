#include "thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
#include <immintrin.h>
#define MHA_CPU_RELAX() _mm_pause()
#else
#define MHA_CPU_RELAX() ((void)0)
#endif

namespace mha {

namespace {
// How long a waiting thread spins before it sleeps. A barrier inside a job is
// usually passed within microseconds; between jobs (the next decoding step, or
// the next layer called from JS) a little longer.
constexpr auto kSpin = std::chrono::microseconds(2000);
// Then it naps: sleeps kNap at a time, for up to kNapFor, checking between naps
// (nobody notifies a napping thread), before it sleeps until notified. A notified
// thread is often queued by the kernel on its notifier's CPU, which is busy with
// the job it just published, until a scheduler tick moves one of them: measured
// on a 2-CPU Linux VM, a worker notified after 5-50 ms asleep started 1.8-3.9 ms
// late, so a short job on 2 threads took as long as on 1. A nap's timer wakes
// the thread on its own CPU, and a new job waits for it kNap / 2 on average.
// Measured on a cached step of a 1024-wide pre-norm layer on 2 threads (Node 22, one
// process per build, 3 runs each): a 5 ms pause before a step cost 0.32-0.50 ms with
// 500 us naps and 0.18-0.36 ms with 200 us; the naps' CPU over the 150 ms after a job
// went from 9.0 to 13.6 ms (medians), and nothing once the pool sleeps.
constexpr auto kNap = std::chrono::microseconds(200);
constexpr auto kNapFor = std::chrono::milliseconds(100);
}  // namespace

ThreadPool::ThreadPool(int size) : size_(std::clamp(size, 1, kMaxThreads)) {
  threads_.reserve(size_ - 1);
  for (int i = 1; i < size_; ++i) threads_.emplace_back([this, i] { worker_main(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_seq_cst);
  job_.fetch_add(1u << kThreadBits, std::memory_order_seq_cst);
  notify();
  for (auto& t : threads_) t.join();
}

void ThreadPool::wait_change(const std::atomic<unsigned>& word, unsigned old) {
  // Spin briefly, then keep checking while yielding the CPU (so that a thread of
  // this job that was preempted on this CPU gets to run), then nap, then sleep.
  for (int i = 0; i < 64; ++i) {
    if (word.load(std::memory_order_acquire) != old) return;
    MHA_CPU_RELAX();
  }
  const auto start = std::chrono::steady_clock::now();
  for (unsigned i = 1;; ++i) {
    if (word.load(std::memory_order_acquire) != old) return;
    std::this_thread::yield();
    if (i % 16 == 0 && std::chrono::steady_clock::now() - start > kSpin) break;
  }
  for (const auto naps = std::chrono::steady_clock::now(); std::chrono::steady_clock::now() - naps < kNapFor;) {
    std::this_thread::sleep_for(kNap);
    if (word.load(std::memory_order_acquire) != old) return;
  }
  // Sleep. The notifier changes word, then reads sleepers_ (both seq_cst); this
  // thread counts itself in, then reads word (both seq_cst): one of the two sees
  // the other, and the notifier takes mu_ before notifying, so no wake-up is lost.
  std::unique_lock<std::mutex> lock(mu_);
  sleepers_.fetch_add(1, std::memory_order_seq_cst);
  while (word.load(std::memory_order_seq_cst) == old) cv_.wait(lock);
  sleepers_.fetch_sub(1, std::memory_order_relaxed);
}

void ThreadPool::notify() {
  if (sleepers_.load(std::memory_order_seq_cst) == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  cv_.notify_all();
}

void ThreadPool::barrier(int n) {
  // Read the phase before arriving: it cannot move on until this thread has arrived.
  const unsigned phase = phase_.load(std::memory_order_acquire);
  if (arrived_.fetch_add(1, std::memory_order_acq_rel) == n - 1) {
    arrived_.store(0, std::memory_order_relaxed);
    next_task_.store(0, std::memory_order_relaxed);
    phase_.store(phase + 1, std::memory_order_seq_cst);  // releases the others
    notify();
    return;
  }
  wait_change(phase_, phase);
}

void ThreadPool::worker_main(int index) {
  unsigned seen = 0;
  for (;;) {
    wait_change(job_, seen);
    seen = job_.load(std::memory_order_acquire);
    if (stop_.load(std::memory_order_acquire)) return;
    const int n = static_cast<int>(seen & ((1u << kThreadBits) - 1));
    if (index >= n) continue;  // not in this job's team
    Team team(this, index, n);
    fn_(ctx_, team);
    team.barrier();  // the join: the caller returns once every thread is here
  }
}

void ThreadPool::run_job(int threads, JobFn fn, void* ctx) {
  const int n = std::clamp(threads, 1, size_);
  Team team(this, 0, n);
  ++jobs_run_;
  if (n == 1) {
    fn(ctx, team);
    return;
  }
  ++jobs_parallel_;
  fn_ = fn, ctx_ = ctx;
  next_task_.store(0, std::memory_order_relaxed);
  const unsigned count = (job_.load(std::memory_order_relaxed) >> kThreadBits) + 1;
  job_.store(count << kThreadBits | static_cast<unsigned>(n), std::memory_order_seq_cst);  // publishes the job
  notify();
  fn(ctx, team);
  team.barrier();  // every worker has returned from fn
}

void ThreadPool::run(int n_tasks, TaskFn fn, void* ctx, bool parallel) {
  if (n_tasks <= 0) return;
  struct Ctx {
    int n;
    TaskFn fn;
    void* ctx;
  } c{n_tasks, fn, ctx};
  job(parallel && n_tasks > 1 ? size_ : 1, [&c](Team& team) {
    team.for_each(c.n, [&](int t) { c.fn(c.ctx, t, team.thread()); });
  });
}

}  // namespace mha
