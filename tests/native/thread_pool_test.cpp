#include <gtest/gtest.h>

#include <atomic>
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
