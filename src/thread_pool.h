// A small fixed-size thread pool. The calling thread is worker 0 and takes part
// in the work, so a pool of size 1 starts no threads at all (this is what the
// single-thread wasm build uses). Tasks are handed out dynamically through an
// atomic counter. Nothing is allocated per call.
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
  // A task function: fn(ctx, task_index, worker_index). worker_index is in
  // [0, size()) and identifies per-thread scratch.
  using TaskFn = void (*)(void* ctx, int task, int worker);

  // Creates size-1 threads; size is clamped to [1, kMaxThreads].
  explicit ThreadPool(int size = 1);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  static constexpr int kMaxThreads = abi::kMaxThreads;  // bindings/abi.js MAX_THREADS
  int size() const { return size_; }

  // Below this much arithmetic a job runs on the calling thread: waking the
  // workers costs more than the work.
  static constexpr double kMinParallelFlops = 2e6;

  // Runs fn for every task in [0, n_tasks) and returns when all are done; on
  // the calling thread alone when parallel is false. Not reentrant: call it
  // from one thread at a time.
  void run(int n_tasks, TaskFn fn, void* ctx, bool parallel = true);

  // Convenience wrapper for lambdas: f(task, worker).
  template <class F>
  void parallel_for(int n_tasks, F&& f, bool parallel = true) {
    auto tramp = [](void* c, int t, int w) { (*static_cast<std::remove_reference_t<F>*>(c))(t, w); };
    run(n_tasks, tramp, &f, parallel);
  }

 private:
  void worker_main(int index);
  void work(int worker);

  int size_ = 1;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable done_cv_;
  unsigned long generation_ = 0;  // guarded by mu_
  bool stop_ = false;             // guarded by mu_
  int active_ = 0;                // workers still inside the current job, guarded by mu_

  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int n_tasks_ = 0;
  std::atomic<int> next_{0};
};

}  // namespace mha
