#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "thread_pool.h"

TEST(ThreadPool, RunsEveryTaskOnceWithValidWorkerIndices) {
  for (int size : {1, 2, 3, 8}) {
    mha::ThreadPool pool(size);
    EXPECT_EQ(pool.size(), size);
    for (int rep = 0; rep < 50; ++rep) {
      const int n = 1 + rep * 7;
      std::vector<std::atomic<int>> hits(n);
      std::atomic<int> bad{0};
      pool.parallel_for(n, [&](int t, int w) {
        hits[t].fetch_add(1);
        if (w < 0 || w >= size) bad.fetch_add(1);
      });
      for (int t = 0; t < n; ++t) ASSERT_EQ(hits[t].load(), 1) << "size " << size << " task " << t;
      ASSERT_EQ(bad.load(), 0);
    }
  }
}

TEST(ThreadPool, SerialRunStaysOnTheCallingThread) {
  mha::ThreadPool pool(4);
  std::vector<int> workers;
  pool.parallel_for(20, [&](int, int w) { workers.push_back(w); }, /*parallel=*/false);
  EXPECT_EQ(workers, std::vector<int>(20, 0));
}

TEST(ThreadPool, SizeIsClamped) {
  EXPECT_EQ(mha::ThreadPool(0).size(), 1);
  EXPECT_EQ(mha::ThreadPool(-5).size(), 1);
}

// Jobs: every thread of a team runs the job; barriers separate phases; for_each
// hands out each task once per phase; pools of 1..N threads and teams of 1..size.

TEST(ThreadPool, BarrierSeparatesPhases) {
  for (int size : {1, 2, 3, 4, 8}) {
    mha::ThreadPool pool(size);
    for (int threads = 1; threads <= size; ++threads) {
      std::vector<int> slot(threads, -1);
      std::atomic<int> bad{0};
      const int phases = 200;
      pool.job(threads, [&](mha::ThreadPool::Team& team) {
        if (team.size() != threads || team.thread() < 0 || team.thread() >= threads) bad.fetch_add(1);
        for (int p = 0; p < phases; ++p) {
          slot[team.thread()] = p;  // each thread writes its slot, then all read every slot
          team.barrier();
          for (int t = 0; t < threads; ++t)
            if (slot[t] != p) bad.fetch_add(1);
          team.barrier();  // nobody writes the next phase before everyone has read this one
        }
      });
      ASSERT_EQ(bad.load(), 0) << "size " << size << " threads " << threads;
    }
  }
}

TEST(ThreadPool, ForEachHandsOutEveryTaskOncePerPhase) {
  for (int size : {1, 2, 3, 5}) {
    mha::ThreadPool pool(size);
    const int sizes[] = {0, 1, 2, 7, 64, 1000, 3};
    std::vector<std::vector<std::atomic<int>>> hits;
    for (int n : sizes) hits.emplace_back(n);
    std::atomic<int> ranges_bad{0};
    std::vector<std::atomic<int>> covered(1001);
    pool.job(size, [&](mha::ThreadPool::Team& team) {
      for (size_t i = 0; i < hits.size(); ++i)
        team.for_each(sizes[i], [&](int t) { hits[i][t].fetch_add(1); });
      team.for_ranges(1001, [&](int b, int e) {
        if (b >= e) ranges_bad.fetch_add(1);
        for (int r = b; r < e; ++r) covered[r].fetch_add(1);
      });
    });
    for (size_t i = 0; i < hits.size(); ++i)
      for (int t = 0; t < sizes[i]; ++t) ASSERT_EQ(hits[i][t].load(), 1) << "size " << size << " n " << sizes[i];
    for (auto& c : covered) ASSERT_EQ(c.load(), 1);
    EXPECT_EQ(ranges_bad.load(), 0);
  }
}

TEST(ThreadPool, ManyJobsOfEverySize) {
  mha::ThreadPool pool(4);
  std::atomic<long> sum{0};
  long want = 0;
  for (int j = 0; j < 20000; ++j) {
    const int threads = 1 + j % 4, n = j % 37;
    pool.job(threads, [&](mha::ThreadPool::Team& team) {
      team.for_each(n, [&](int t) { sum.fetch_add(t + 1); });
      if (team.thread() == 0) sum.fetch_add(1000);
    });
    want += static_cast<long>(n) * (n + 1) / 2 + 1000;
  }
  EXPECT_EQ(sum.load(), want);
}

TEST(ThreadPool, SleepingWorkersWakeForTheNextJob) {
  // Gaps longer than the spin: the workers nap (5 ms: they see the job between
  // naps) or sleep until notified (150 ms, past the naps), at job start and at a
  // barrier where one thread is late.
  mha::ThreadPool pool(3);
  for (int j = 0; j < 7; ++j) {
    std::this_thread::sleep_for(std::chrono::milliseconds(j < 5 ? 5 : 150));
    std::atomic<int> after{0};
    pool.job(3, [&](mha::ThreadPool::Team& team) {
      if (team.thread() == j % 3) std::this_thread::sleep_for(std::chrono::milliseconds(j < 5 ? 5 : 150));
      team.barrier();
      after.fetch_add(1);
    });
    EXPECT_EQ(after.load(), 3);
  }
}

TEST(ThreadPool, OneThresholdDecidesTheThreads) {
  mha::ThreadPool pool(3);
  EXPECT_EQ(pool.threads_for(mha::ThreadPool::kMinParallelWork - 1), 1);
  EXPECT_EQ(pool.threads_for(mha::ThreadPool::kMinParallelWork), 3);
  EXPECT_EQ(mha::ThreadPool(1).threads_for(1e12), 1);
}
