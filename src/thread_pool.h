// A fixed-size pool of persistent threads that runs one job at a time. A job is
// a function every thread of a team runs (the calling thread is thread 0 and
// takes part, so a pool of size 1 starts no threads at all: that is what the
// single-thread wasm build uses); inside it, Team::barrier() waits for the whole
// team and Team::for_each() spreads tasks over it. A layer's forward step is one
// job with barriers between its phases (GEMMs, attention, norms, feed-forward),
// as ggml runs a graph: the workers are woken and joined once per step, not once
// per GEMM. Nothing is allocated per job.
//
// Waiting (for the next job, or at a barrier) spins for a short while, then naps
// in short timed sleeps for a while (a job published meanwhile is seen within a
// nap, by a thread that wakes on its own CPU), then sleeps on a condition
// variable: back-to-back phases and steps cost no wake-up, a job after a pause
// starts on every thread within a nap, and an idle pool costs no CPU.
#pragma once
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#include "abi.h"

namespace mha {

class ThreadPool {
 public:
  // Creates size-1 threads; size is clamped to [1, kMaxThreads].
  explicit ThreadPool(int size = 1);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  static constexpr int kMaxThreads = abi::kMaxThreads;  // bindings/abi.js MAX_THREADS
  int size() const { return size_; }

  // The one parallel threshold: a job with less work than this runs on the
  // calling thread alone (waking the workers would cost more than it saves).
  // Work is counted in floating-point operations, element-wise passes included
  // (each operator's work() says what a call does).
  static constexpr double kMinParallelWork = 1e6;
  // How many threads a job of `work` runs on: all of them, or 1.
  int threads_for(double work) const { return work >= kMinParallelWork ? size_ : 1; }

  // What one thread of a job sees.
  class Team {
   public:
    int thread() const { return thread_; }  // in [0, size())
    int size() const { return size_; }
    // Returns once every thread of the team has called it; what they wrote
    // before is visible to all after.
    void barrier() {
      if (size_ > 1) pool_->barrier(size_);
    }
    // Runs f(task) for every task in [0, n), each once, spread over the team
    // (dynamically: a thread takes the next task when it is done), then a
    // barrier. Every thread of the team must call it, with the same n.
    template <class F>
    void for_each(int n, F&& f) {
      if (size_ == 1) {
        for (int t = 0; t < n; ++t) f(t);
        return;
      }
      for (int t; (t = pool_->next_task_.fetch_add(1, std::memory_order_relaxed)) < n;) f(t);
      barrier();
    }
    // for_each over up to 4 * size() chunks of [0, n): f(begin, end).
    template <class F>
    void for_ranges(int n, F&& f) {
      const int chunks = n < 4 * size_ ? n : 4 * size_;
      for_each(chunks, [&](int c) {
        f(static_cast<int>(static_cast<long long>(n) * c / chunks),
          static_cast<int>(static_cast<long long>(n) * (c + 1) / chunks));
      });
    }

   private:
    friend class ThreadPool;
    Team(ThreadPool* pool, int thread, int size) : pool_(pool), thread_(thread), size_(size) {}
    ThreadPool* pool_;
    int thread_, size_;
  };

  using JobFn = void (*)(void* ctx, Team& team);
  // Runs fn(ctx, team) on `threads` threads (clamped to [1, size()]; the calling
  // thread is thread 0) and returns when all of them have returned. Not
  // reentrant: one job at a time, from one thread at a time.
  void run_job(int threads, JobFn fn, void* ctx);
  // Jobs run so far, and how many of them woke the workers (for tests).
  unsigned long jobs_run() const { return jobs_run_; }
  unsigned long jobs_parallel() const { return jobs_parallel_; }
  // The same for a lambda: f(Team&).
  template <class F>
  void job(int threads, F&& f) {
    auto tramp = [](void* c, Team& t) { (*static_cast<std::remove_reference_t<F>*>(c))(t); };
    run_job(threads, tramp, &f);
  }

  // A job with one for_each: fn(ctx, task, thread) for every task in
  // [0, n_tasks); on the calling thread alone when parallel is false.
  using TaskFn = void (*)(void* ctx, int task, int worker);
  void run(int n_tasks, TaskFn fn, void* ctx, bool parallel = true);
  template <class F>
  void parallel_for(int n_tasks, F&& f, bool parallel = true) {
    auto tramp = [](void* c, int t, int w) { (*static_cast<std::remove_reference_t<F>*>(c))(t, w); };
    run(n_tasks, tramp, &f, parallel);
  }

 private:
  void worker_main(int index);
  void barrier(int n);
  // Returns once word != old: spins, then sleeps until notify() is called.
  void wait_change(const std::atomic<unsigned>& word, unsigned old);
  // Wakes the sleepers of wait_change (after word was changed).
  void notify();

  int size_ = 1;
  std::vector<std::thread> threads_;

  // The current job: fn_ and ctx_ are written by the caller before it bumps job_,
  // which holds (job count << kThreadBits) | the job's thread count, so that a
  // worker reads both in one load.
  static constexpr int kThreadBits = 7;
  static_assert(kMaxThreads < (1 << kThreadBits), "the thread count must fit in kThreadBits");
  JobFn fn_ = nullptr;
  void* ctx_ = nullptr;
  std::atomic<unsigned> job_{0};
  std::atomic<bool> stop_{false};

  // The barrier: arrivals of this phase, and the phase count waiters watch.
  std::atomic<int> arrived_{0};
  std::atomic<unsigned> phase_{0};
  std::atomic<int> next_task_{0};  // for_each's counter, reset at every barrier

  unsigned long jobs_run_ = 0, jobs_parallel_ = 0;  // the calling thread's own counts

  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<int> sleepers_{0};
};

}  // namespace mha
