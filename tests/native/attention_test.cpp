// Attention and the full layer against float64 references (attention_reference
// and mha_reference compute in double, with no blocking and no online softmax).
#include <gtest/gtest.h>

#include <cstdint>

#include "attention.h"
#include "mha.h"
#include "reference.h"
#include "test_util.h"

using namespace mha;
using mha_test::all_finite;
using mha_test::rel_err;
using mha_test::rel_err_nonfinite;
using mha_test::uniform;

namespace {

struct Case {
  int B, H, Lq, Lk, D, Dv;
  int mask;  // 0 none, 1 bool [Lq,Lk], 2 float [B,H,Lq,Lk], 3 bool [B,H,Lq,Lk]
  bool padding, causal;
  int weights;  // 0 none, 1 per head, 2 averaged
};

void run_case(const Case& c, int threads, uint32_t seed) {
  std::mt19937 rng(seed);
  auto q = uniform(size_t(c.B) * c.H * c.Lq * c.D, -3, 3, rng);
  auto k = uniform(size_t(c.B) * c.H * c.Lk * c.D, -3, 3, rng);
  auto v = uniform(size_t(c.B) * c.H * c.Lk * c.Dv, -1, 1, rng);
  const bool bcast = c.mask == 1;
  const size_t mask_n = bcast ? size_t(c.Lq) * c.Lk : size_t(c.B) * c.H * c.Lq * c.Lk;
  std::vector<uint8_t> bm(mask_n), kp(size_t(c.B) * c.Lk);
  std::vector<float> fm(mask_n);
  std::bernoulli_distribution coin(0.3);
  for (auto& x : bm) x = coin(rng);
  for (auto& x : fm) x = coin(rng) ? -INFINITY : std::uniform_real_distribution<float>(-2, 2)(rng);
  for (auto& x : kp) x = coin(rng);
  if (c.padding) std::fill(kp.begin(), kp.begin() + c.Lk, 1);  // batch 0: every key padded

  AttentionArgs a;
  a.B = c.B, a.H = c.H, a.Lq = c.Lq, a.Lk = c.Lk, a.D = c.D, a.Dv = c.Dv;
  a.q = {q.data(), size_t(c.H) * c.Lq * c.D, size_t(c.Lq) * c.D, size_t(c.D)};
  a.k = {k.data(), size_t(c.H) * c.Lk * c.D, size_t(c.Lk) * c.D, size_t(c.D)};
  a.v = {v.data(), size_t(c.H) * c.Lk * c.Dv, size_t(c.Lk) * c.Dv, size_t(c.Dv)};
  a.o_sb = size_t(c.H) * c.Lq * c.Dv, a.o_sh = size_t(c.Lq) * c.Dv, a.o_sl = c.Dv;
  a.scale = 1.0f / std::sqrt(float(c.D));
  if (c.mask == 1 || c.mask == 3) a.mask.bool_mask = bm.data();
  if (c.mask == 2) a.mask.float_mask = fm.data();
  a.mask.sl = c.Lk, a.mask.sh = bcast ? 0 : size_t(c.Lq) * c.Lk, a.mask.sb = bcast ? 0 : size_t(c.H) * c.Lq * c.Lk;
  if (c.padding) a.mask.key_padding = kp.data();
  a.mask.causal = c.causal;
  a.average_weights = c.weights == 2;
  const size_t out_n = size_t(c.B) * c.H * c.Lq * c.Dv;
  const size_t w_n = size_t(c.B) * (c.weights == 2 ? 1 : c.H) * c.Lq * c.Lk;
  std::vector<float> out(out_n, NAN), ref(out_n), w(w_n, NAN), wref(w_n);

  a.out = ref.data();
  a.weights = c.weights ? wref.data() : nullptr;
  attention_reference(a);
  a.out = out.data();
  a.weights = c.weights ? w.data() : nullptr;
  ThreadPool pool(threads);
  Workspace ws;
  ASSERT_EQ(Attention::run(a, pool, ws), Status::kOk);
  const std::string where = "B" + std::to_string(c.B) + " H" + std::to_string(c.H) + " Lq" + std::to_string(c.Lq) +
                            " Lk" + std::to_string(c.Lk) + " D" + std::to_string(c.D) + " Dv" + std::to_string(c.Dv) +
                            " mask" + std::to_string(c.mask) + " pad" + std::to_string(c.padding) + " causal" +
                            std::to_string(c.causal) + " w" + std::to_string(c.weights) + " t" + std::to_string(threads);
  ASSERT_TRUE(all_finite(out.data(), out_n)) << where;
  EXPECT_LT(rel_err(out.data(), ref.data(), out_n), 1e-5) << where;
  if (c.weights) {
    ASSERT_TRUE(all_finite(w.data(), w_n)) << where;
    EXPECT_LT(rel_err(w.data(), wref.data(), w_n), 1e-5) << where;
  }
}

TEST(Attention, MatchesFloat64Reference) {
  const Case cases[] = {
      {1, 1, 1, 1, 1, 1, 0, false, false, 1},     {1, 2, 3, 5, 4, 3, 0, false, false, 0},
      {2, 3, 17, 17, 5, 7, 1, false, true, 1},    {2, 2, 130, 300, 16, 8, 2, true, false, 2},
      {3, 2, 65, 129, 8, 16, 3, true, true, 1},   {1, 4, 200, 150, 32, 32, 0, false, true, 2},
      {2, 1, 150, 40, 3, 5, 0, true, true, 0},    {1, 12, 128, 128, 64, 64, 0, false, false, 0},
      {2, 2, 5, 300, 17, 9, 2, false, true, 1},   {1, 3, 129, 129, 64, 64, 1, true, true, 2},
      // Up to kDirectRows queries (a decoding step) read K and V in place.
      {2, 3, 1, 300, 16, 8, 1, true, true, 1},    {1, 4, 4, 257, 64, 64, 2, false, true, 2},
      {2, 2, 2, 129, 5, 3, 3, true, false, 0},    {1, 2, 4, 7, 67, 33, 0, false, true, 1},
  };
  uint32_t seed = 10;
  for (const Case& c : cases)
    for (int threads : {1, 3}) run_case(c, threads, seed++);
}

// Grouped-query attention (H query heads on Hkv key/value heads) against a float64
// reference written here, with what differs from head to head: a sink, an ALiBi
// slope and a float mask per head, and a NaN query row in one head (whose mask
// hides every key, with a float mask). Up to kDirectRows queries (K and V read in
// place, a decoding step) and more (packed); 1 and 3 threads; causal over a cache,
// windows, key padding, soft-capping.
TEST(Attention, GroupedQueryHeadsAgainstFloat64) {
  struct G {
    int B, H, Hkv, Lq, Lk, D, Dv, window;
    bool sinks, alibi, fmask, padding, causal, nan_q;
    float softcap;
  };
  const G cases[] = {
      {1, 9, 3, 1, 300, 64, 64, 0, false, false, false, false, true, false, 0.0f},
      {2, 6, 2, 1, 130, 16, 8, 0, true, true, true, true, true, false, 0.0f},
      {1, 8, 1, 3, 257, 32, 16, 0, true, false, true, false, true, true, 0.0f},
      {2, 4, 2, 4, 40, 8, 8, 16, false, true, false, true, true, false, 30.0f},
      {1, 14, 2, 2, 129, 17, 9, 0, true, true, true, true, false, false, 0.0f},
      {1, 6, 3, 1, 5, 4, 4, 0, true, false, false, false, true, true, 0.0f},
      {1, 4, 2, 7, 70, 8, 8, 0, true, true, true, true, true, false, 0.0f},  // packed
  };
  uint32_t seed = 40;
  for (const G& c : cases)
    for (int threads : {1, 3}) {
      std::mt19937 rng(seed++);
      const int gsize = c.H / c.Hkv;
      auto q = uniform(size_t(c.B) * c.H * c.Lq * c.D, -3, 3, rng);
      auto k = uniform(size_t(c.B) * c.Hkv * c.Lk * c.D, -3, 3, rng);
      auto v = uniform(size_t(c.B) * c.Hkv * c.Lk * c.Dv, -1, 1, rng);
      auto sinks = uniform(c.H, -1, 2, rng), slopes = uniform(c.H, 0, 0.5, rng);
      auto fm = uniform(size_t(c.B) * c.H * c.Lq * c.Lk, -2, 2, rng);
      std::vector<uint8_t> kp(size_t(c.B) * c.Lk);
      std::bernoulli_distribution coin(0.2);
      for (auto& x : kp) x = coin(rng);
      const int nan_head = c.H - 1;  // its first query row of batch 0 holds a NaN
      if (c.nan_q) q[(size_t(nan_head) * c.Lq) * c.D + 1] = NAN;
      // With a float mask, that row's mask hides every key: it attends to nothing (zeros), where
      // the first head of its group sees keys.
      const bool nan_hidden = c.nan_q && c.fmask;
      if (nan_hidden) std::fill_n(fm.begin() + size_t(nan_head) * c.Lq * c.Lk, c.Lk, -INFINITY);

      AttentionArgs a;
      a.B = c.B, a.H = c.H, a.Hkv = c.Hkv, a.Lq = c.Lq, a.Lk = c.Lk, a.D = c.D, a.Dv = c.Dv;
      a.q = {q.data(), size_t(c.H) * c.Lq * c.D, size_t(c.Lq) * c.D, size_t(c.D)};
      a.k = {k.data(), size_t(c.Hkv) * c.Lk * c.D, size_t(c.Lk) * c.D, size_t(c.D)};
      a.v = {v.data(), size_t(c.Hkv) * c.Lk * c.Dv, size_t(c.Lk) * c.Dv, size_t(c.Dv)};
      a.o_sb = size_t(c.H) * c.Lq * c.Dv, a.o_sh = size_t(c.Lq) * c.Dv, a.o_sl = c.Dv;
      a.scale = 1.0f / std::sqrt(float(c.D));
      a.softcap = c.softcap;
      if (c.sinks) a.sinks = sinks.data();
      if (c.alibi) a.alibi = slopes.data();
      if (c.fmask) a.mask.float_mask = fm.data(), a.mask.sl = c.Lk, a.mask.sh = size_t(c.Lq) * c.Lk, a.mask.sb = size_t(c.H) * c.Lq * c.Lk;
      if (c.padding) a.mask.key_padding = kp.data();
      a.mask.causal = c.causal, a.mask.window = c.window;
      const size_t out_n = size_t(c.B) * c.H * c.Lq * c.Dv;
      std::vector<float> out(out_n, 7.0f), ref(out_n);

      // The reference: every (b, h, i) from the definitions (attention.h), in double.
      for (int b = 0; b < c.B; ++b)
        for (int h = 0; h < c.H; ++h)
          for (int i = 0; i < c.Lq; ++i) {
            const int kvh = h / gsize;
            const long pos = i + c.Lk - c.Lq;
            const float* qi = &q[((size_t(b) * c.H + h) * c.Lq + i) * c.D];
            std::vector<double> s(c.Lk);
            std::vector<bool> seen(c.Lk);
            double mx = c.sinks ? sinks[h] : -INFINITY;
            bool any = false, nan = false;
            for (int j = 0; j < c.Lk; ++j) {
              const float* kj = &k[((size_t(b) * c.Hkv + kvh) * c.Lk + j) * c.D];
              double d = 0;
              for (int e = 0; e < c.D; ++e) d += double(qi[e]) * kj[e];
              d *= a.scale;
              if (c.softcap > 0) d = c.softcap * std::tanh(d / c.softcap);
              if (c.alibi) d -= double(slopes[h]) * std::labs(pos - j);
              if (c.fmask) d += fm[((size_t(b) * c.H + h) * c.Lq + i) * c.Lk + j];
              const bool hidden = (c.padding && kp[size_t(b) * c.Lk + j]) || (c.causal && j > pos) ||
                                  (c.fmask && fm[((size_t(b) * c.H + h) * c.Lq + i) * c.Lk + j] == -INFINITY) ||
                                  (c.window > 0 && std::labs(pos - j) >= c.window);
              seen[j] = !hidden;
              s[j] = d;
              if (hidden) continue;
              any = true;
              if (std::isnan(d)) nan = true;
              mx = std::max(mx, d);
            }
            float* o = &ref[((size_t(b) * c.H + h) * c.Lq + i) * c.Dv];
            if (!any) {
              std::fill(o, o + c.Dv, 0.0f);
              continue;
            }
            if (nan) {
              std::fill(o, o + c.Dv, NAN);
              continue;
            }
            double sum = c.sinks ? std::exp(double(sinks[h]) - mx) : 0.0;
            for (int j = 0; j < c.Lk; ++j) sum += seen[j] ? std::exp(s[j] - mx) : 0.0;
            for (int e = 0; e < c.Dv; ++e) {
              double acc = 0;
              for (int j = 0; j < c.Lk; ++j)
                if (seen[j]) acc += std::exp(s[j] - mx) / sum * v[((size_t(b) * c.Hkv + kvh) * c.Lk + j) * c.Dv + e];
              o[e] = float(acc);
            }
          }

      a.out = out.data();
      ThreadPool pool(threads);
      Workspace ws;
      ASSERT_EQ(Attention::run(a, pool, ws), Status::kOk);
      const std::string where = "B" + std::to_string(c.B) + " H" + std::to_string(c.H) + "/" + std::to_string(c.Hkv) +
                                " Lq" + std::to_string(c.Lq) + " Lk" + std::to_string(c.Lk) + " t" + std::to_string(threads);
      if (c.nan_q)  // the NaN row: NaN where it sees keys, zeros where its mask hides them all
        for (int e = 0; e < c.Dv; ++e) {
          const float x = out[size_t(nan_head) * c.Lq * c.Dv + e];
          EXPECT_TRUE(nan_hidden ? x == 0.0f : std::isnan(x)) << where;
        }
      EXPECT_LT(rel_err_nonfinite(out.data(), ref.data(), out_n), 1e-5) << where;
    }
}

TEST(Attention, AllKeysMaskedGivesZerosNotNaN) {
  // Lq > Lk with a causal mask: the first Lq - Lk query rows see no key.
  std::vector<float> q(6 * 4, 1.0f), k(2 * 4, 1.0f), v(2 * 4, 1.0f), out(6 * 4, NAN), w(6 * 2, NAN);
  AttentionArgs a;
  a.B = 1, a.H = 1, a.Lq = 6, a.Lk = 2, a.D = 4, a.Dv = 4;
  a.q = {q.data(), 24, 24, 4}, a.k = {k.data(), 8, 8, 4}, a.v = {v.data(), 8, 8, 4};
  a.out = out.data(), a.o_sb = 24, a.o_sh = 24, a.o_sl = 4;
  a.mask.causal = true;
  a.weights = w.data();
  ThreadPool pool(1);
  Workspace ws;
  ASSERT_EQ(Attention::run(a, pool, ws), Status::kOk);
  for (int i = 0; i < 6; ++i) {
    const bool sees = i >= 4;  // j <= i + (Lk - Lq) = i - 4
    for (int c = 0; c < 4; ++c) EXPECT_EQ(out[i * 4 + c], sees ? 1.0f : 0.0f) << i;
    EXPECT_EQ(w[i * 2] + w[i * 2 + 1], sees ? 1.0f : 0.0f) << i;
  }
}

TEST(Attention, RowsThatSeeNoKeyStayZeroWhateverNaNTheInputsHold) {
  // As above, with NaN in query row 0, in key 1 and in value 0: rows 0..3 see no key
  // and stay zero; rows 4 and 5 read the NaN key (and value) and are NaN.
  for (int threads : {1, 2}) {
    std::vector<float> q(6 * 4, 1.0f), k(2 * 4, 1.0f), v(2 * 4, 1.0f), out(6 * 4, 7.0f), w(6 * 2, 7.0f);
    q[0] = NAN, k[4] = NAN, v[1] = NAN;
    AttentionArgs a;
    a.B = 1, a.H = 1, a.Lq = 6, a.Lk = 2, a.D = 4, a.Dv = 4;
    a.q = {q.data(), 24, 24, 4}, a.k = {k.data(), 8, 8, 4}, a.v = {v.data(), 8, 8, 4};
    a.out = out.data(), a.o_sb = 24, a.o_sh = 24, a.o_sl = 4;
    a.mask.causal = true;
    a.weights = w.data();
    std::vector<float> ref(out.size()), wref(w.size());
    ThreadPool pool(threads);
    Workspace ws;
    ASSERT_EQ(Attention::run(a, pool, ws), Status::kOk);
    a.out = ref.data(), a.weights = wref.data();
    attention_reference(a);
    for (int i = 0; i < 6; ++i) {
      for (int c = 0; c < 4; ++c) {
        if (i < 4) EXPECT_EQ(out[i * 4 + c], 0.0f) << i;
        else EXPECT_TRUE(std::isnan(out[i * 4 + c])) << i;
      }
      for (int j = 0; j < 2; ++j) {
        if (i < 4) EXPECT_EQ(w[i * 2 + j], 0.0f) << i;
        else EXPECT_TRUE(std::isnan(w[i * 2 + j])) << i;
      }
    }
    EXPECT_EQ(rel_err_nonfinite(out.data(), ref.data(), out.size()), 0.0);
    EXPECT_EQ(rel_err_nonfinite(w.data(), wref.data(), w.size()), 0.0);
  }
}

// NaN and Infinity in q, k, v: the flash path (with its skipped blocks) gives what the
// float64 reference gives, PyTorch's math done literally: masks added as -inf (a NaN
// score stays NaN, +inf - inf is NaN), softmax over every key, weights times V over
// every key (0 * NaN = NaN); only a row that no mask leaves a key stays zero.
struct Poison {
  char tensor;  // 'q', 'k' or 'v'
  int b, h, row, col;
  float value;
};

struct NanCase {
  int Lq, Lk;
  int mask;  // 0 none, 1 causal, 2 key padding (batch 1: keys >= 200), 3 both, 4 bool [Lq,Lk], 5 float [B,H,Lq,Lk]
};

void run_nan_case(const NanCase& c, const Poison& p, int weights, int threads) {
  const int B = 2, H = 2, D = 8, Dv = 5;
  std::mt19937 rng(c.Lq * 7 + c.Lk + c.mask);
  auto q = uniform(size_t(B) * H * c.Lq * D, -1, 1, rng);
  auto k = uniform(size_t(B) * H * c.Lk * D, -1, 1, rng);
  auto v = uniform(size_t(B) * H * c.Lk * Dv, -1, 1, rng);
  std::vector<uint8_t> kp(size_t(B) * c.Lk, 0), bm(size_t(c.Lq) * c.Lk);
  for (int j = 200; j < c.Lk; ++j) kp[size_t(c.Lk) + j] = 1;
  std::bernoulli_distribution coin(0.3);
  for (auto& x : bm) x = coin(rng);
  std::vector<float> fm(size_t(B) * H * c.Lq * c.Lk);
  for (auto& x : fm) x = coin(rng) ? -INFINITY : std::uniform_real_distribution<float>(-1, 1)(rng);
  float* t = p.tensor == 'q' ? q.data() : p.tensor == 'k' ? k.data() : v.data();
  const int rows = p.tensor == 'q' ? c.Lq : c.Lk, width = p.tensor == 'v' ? Dv : D;
  t[((size_t(p.b) * H + p.h) * rows + p.row) * width + p.col] = p.value;

  AttentionArgs a;
  a.B = B, a.H = H, a.Lq = c.Lq, a.Lk = c.Lk, a.D = D, a.Dv = Dv;
  a.q = {q.data(), size_t(H) * c.Lq * D, size_t(c.Lq) * D, size_t(D)};
  a.k = {k.data(), size_t(H) * c.Lk * D, size_t(c.Lk) * D, size_t(D)};
  a.v = {v.data(), size_t(H) * c.Lk * Dv, size_t(c.Lk) * Dv, size_t(Dv)};
  a.o_sb = size_t(H) * c.Lq * Dv, a.o_sh = size_t(c.Lq) * Dv, a.o_sl = Dv;
  a.scale = 0.5f;
  a.mask.causal = c.mask == 1 || c.mask == 3;
  if (c.mask == 2 || c.mask == 3) a.mask.key_padding = kp.data();
  if (c.mask == 4) a.mask.bool_mask = bm.data(), a.mask.sl = c.Lk;
  if (c.mask == 5) a.mask.float_mask = fm.data(), a.mask.sl = c.Lk, a.mask.sh = size_t(c.Lq) * c.Lk, a.mask.sb = size_t(H) * c.Lq * c.Lk;
  a.average_weights = weights == 2;
  const size_t out_n = size_t(B) * H * c.Lq * Dv, w_n = size_t(B) * (weights == 2 ? 1 : H) * c.Lq * c.Lk;
  std::vector<float> out(out_n, 7.0f), ref(out_n), w(w_n, 7.0f), wref(w_n);
  a.out = ref.data(), a.weights = weights ? wref.data() : nullptr;
  attention_reference(a);
  a.out = out.data(), a.weights = weights ? w.data() : nullptr;
  ThreadPool pool(threads);
  Workspace ws;
  ASSERT_EQ(Attention::run(a, pool, ws), Status::kOk);
  const std::string where = std::string(1, p.tensor) + "[" + std::to_string(p.b) + "," + std::to_string(p.h) + "," +
                            std::to_string(p.row) + "," + std::to_string(p.col) + "]=" + std::to_string(p.value) +
                            " Lq" + std::to_string(c.Lq) + " Lk" + std::to_string(c.Lk) + " mask" + std::to_string(c.mask) +
                            " w" + std::to_string(weights) + " t" + std::to_string(threads);
  EXPECT_LT(rel_err_nonfinite(out.data(), ref.data(), out_n), 1e-5) << where;
  if (weights) {
    EXPECT_LT(rel_err_nonfinite(w.data(), wref.data(), w_n), 1e-5) << where;
  }
  // Nothing leaks into the other heads.
  for (int bh = 0; bh < B * H; ++bh) {
    if (bh != p.b * H + p.h) {
      EXPECT_TRUE(all_finite(out.data() + bh * size_t(c.Lq) * Dv, size_t(c.Lq) * Dv)) << where << " bh" << bh;
    }
  }
}

TEST(Attention, NonFiniteInputsPropagateAsPyTorchMath) {
  // Lq 150 / Lk 300: three query blocks and three key blocks; causal (bottom-right,
  // diagonal 150) skips the last key block for the first query block, and the key
  // padding of batch 1 covers the whole last key block.
  const NanCase cases[] = {{150, 300, 0}, {150, 300, 1}, {150, 300, 2}, {150, 300, 3}, {150, 300, 4}, {150, 300, 5},
                           {200, 200, 1}, {200, 200, 3},
                           // decoding steps (K and V read in place), keys in three blocks
                           {1, 300, 0},   {1, 300, 1},   {1, 300, 3},   {4, 300, 2},   {4, 300, 3},   {3, 300, 5}};
  const Poison poisons[] = {
      {'q', 1, 0, 10, 3, NAN},        {'q', 0, 1, 149, 0, -INFINITY}, {'k', 0, 1, 4, 2, NAN},
      {'k', 1, 1, 290, 7, NAN},       {'k', 1, 0, 199, 0, NAN},       {'k', 0, 0, 20, 5, INFINITY},
      {'v', 1, 0, 295, 4, NAN},       {'v', 0, 1, 50, 1, NAN},        {'v', 1, 1, 100, 0, INFINITY},
      {'v', 0, 0, 299, 2, -INFINITY},
  };
  for (const NanCase& c : cases)
    for (const Poison& p : poisons) {
      if (p.row >= (p.tensor == 'q' ? c.Lq : c.Lk)) continue;
      for (int weights : {0, 1, 2})
        for (int threads : {1, 3}) run_nan_case(c, p, weights, threads);
    }
}

TEST(Attention, NaNRowsAndColumnsWhereExpected) {
  // Pins down the semantics independently of the reference: B = H = 1, Lq = Lk = 200, causal.
  const int L = 200, D = 4, Dv = 3;
  std::mt19937 rng(77);
  auto base_q = uniform(size_t(L) * D, -1, 1, rng), base_k = uniform(size_t(L) * D, -1, 1, rng);
  auto base_v = uniform(size_t(L) * Dv, -1, 1, rng);
  auto run = [&](std::vector<float>& q, std::vector<float>& k, std::vector<float>& v, std::vector<float>& out,
                 std::vector<float>& w) {
    out.assign(size_t(L) * Dv, 7.0f), w.assign(size_t(L) * L, 7.0f);
    AttentionArgs a;
    a.B = a.H = 1, a.Lq = a.Lk = L, a.D = D, a.Dv = Dv;
    a.q = {q.data(), 0, 0, size_t(D)}, a.k = {k.data(), 0, 0, size_t(D)}, a.v = {v.data(), 0, 0, size_t(Dv)};
    a.out = out.data(), a.o_sl = Dv, a.scale = 0.5f, a.mask.causal = true, a.weights = w.data();
    ThreadPool pool(2);
    Workspace ws;
    ASSERT_EQ(Attention::run(a, pool, ws), Status::kOk);
  };
  std::vector<float> out, w;
  {  // NaN in query row 70: output row 70 and its weights NaN, every other row finite.
    auto q = base_q, k = base_k, v = base_v;
    q[70 * D + 1] = NAN;
    run(q, k, v, out, w);
    for (int i = 0; i < L; ++i)
      for (int c = 0; c < Dv; ++c) EXPECT_EQ(std::isnan(out[i * Dv + c]), i == 70) << i;
    for (int j = 0; j < L; ++j) EXPECT_TRUE(std::isnan(w[70 * L + j]));
    EXPECT_TRUE(all_finite(w.data(), 70 * size_t(L)));
  }
  {  // NaN in key 180: hidden from rows 0..179 by the causal mask, but NaN - inf is NaN: every row NaN.
    auto q = base_q, k = base_k, v = base_v;
    k[180 * D] = NAN;
    run(q, k, v, out, w);
    for (int i = 0; i < L; ++i) EXPECT_TRUE(std::isnan(out[i * Dv])) << i;
  }
  {  // NaN in value 180, column 2: every row's column 2 (0 * NaN where hidden), weights finite.
    auto q = base_q, k = base_k, v = base_v;
    v[180 * Dv + 2] = NAN;
    run(q, k, v, out, w);
    for (int i = 0; i < L; ++i)
      for (int c = 0; c < Dv; ++c) EXPECT_EQ(std::isnan(out[i * Dv + c]), c == 2) << i;
    EXPECT_TRUE(all_finite(w.data(), w.size()));
  }
  {  // +inf in a score: softmax's inf - inf is NaN, as in PyTorch.
    auto q = base_q, k = base_k, v = base_v;
    q[5 * D] = INFINITY, k[3 * D] = 1.0f;  // q5 . k3 = +inf
    run(q, k, v, out, w);
    for (int c = 0; c < Dv; ++c) EXPECT_TRUE(std::isnan(out[5 * Dv + c]));
  }
}

TEST(Attention, RejectsBadSizes) {
  AttentionArgs a;
  ThreadPool pool(1);
  Workspace ws;
  EXPECT_EQ(Attention::run(a, pool, ws), Status::kInvalidArgument);
}

struct LayerCase {
  int E, H, kdim, vdim, B, Lq, Lk;
  bool self, bias, in_proj, causal;
  int weights;
};

TEST(MultiHeadAttention, MatchesFloat64Reference) {
  const LayerCase cases[] = {
      {8, 2, 8, 8, 1, 5, 5, true, true, true, false, 2},     {12, 3, 12, 12, 2, 17, 17, true, true, false, true, 1},
      {6, 2, 5, 3, 3, 4, 9, false, true, false, false, 2},   {16, 4, 16, 16, 2, 33, 21, false, false, true, true, 0},
      {64, 8, 64, 64, 2, 70, 70, true, true, true, true, 2}, {20, 5, 7, 11, 1, 129, 64, false, true, false, false, 1},
  };
  uint32_t seed = 100;
  for (const LayerCase& c : cases)
    for (int threads : {1, 2}) {
      std::mt19937 rng(seed++);
      MhaConfig cfg{c.E, c.H, c.kdim, c.vdim, c.bias};
      const float ws = 1.0f / std::sqrt(float(c.E));
      auto inw = uniform(3 * c.E * c.E, -ws, ws, rng), qw = uniform(c.E * c.E, -ws, ws, rng);
      auto kw = uniform(c.E * c.kdim, -ws, ws, rng), vw = uniform(c.E * c.vdim, -ws, ws, rng);
      auto inb = uniform(3 * c.E, -ws, ws, rng), ow = uniform(c.E * c.E, -ws, ws, rng), ob = uniform(c.E, -ws, ws, rng);
      MhaWeights w;
      if (c.in_proj) {
        w.in_proj_weight = inw.data();
      } else {
        w.q_proj_weight = qw.data(), w.k_proj_weight = kw.data(), w.v_proj_weight = vw.data();
      }
      w.in_proj_bias = inb.data(), w.out_proj_weight = ow.data(), w.out_proj_bias = ob.data();
      auto x = uniform(size_t(c.B) * c.Lq * c.E, -1, 1, rng);
      auto key = uniform(size_t(c.B) * c.Lk * c.kdim, -1, 1, rng), val = uniform(size_t(c.B) * c.Lk * c.vdim, -1, 1, rng);
      MhaForwardArgs a;
      a.B = c.B, a.Lq = c.Lq, a.Lk = c.self ? c.Lq : c.Lk;
      a.query = x.data(), a.key = c.self ? x.data() : key.data(), a.value = c.self ? x.data() : val.data();
      a.mask.causal = c.causal;
      a.average_weights = c.weights == 2;
      const size_t on = size_t(c.B) * c.Lq * c.E, wn = size_t(c.B) * (c.weights == 2 ? 1 : c.H) * c.Lq * a.Lk;
      std::vector<float> out(on), ref(on), wt(wn), wref(wn);
      a.output = ref.data(), a.weights = c.weights ? wref.data() : nullptr;
      mha_reference(cfg, w, a);
      MultiHeadAttention layer(cfg);
      ThreadPool pool(threads);
      Workspace work;
      a.output = out.data(), a.weights = c.weights ? wt.data() : nullptr;
      EXPECT_EQ(layer.forward(a, pool, work), Status::kNoWeights);
      ASSERT_EQ(layer.set_weights(w), Status::kOk);
      for (int rep = 0; rep < 2; ++rep) {  // the second call reuses the workspace
        std::fill(out.begin(), out.end(), NAN);
        ASSERT_EQ(layer.forward(a, pool, work), Status::kOk);
        EXPECT_LT(rel_err(out.data(), ref.data(), on), 1e-5) << "E" << c.E << " t" << threads;
        if (c.weights) {
          EXPECT_LT(rel_err(wt.data(), wref.data(), wn), 1e-5);
        }
      }
    }
}

TEST(MultiHeadAttention, NonFiniteInputsMatchTheFloat64Reference) {
  // Through the projections: a NaN in an input row reaches every head of that row.
  const int E = 16, H = 4, B = 2, L = 140;
  std::mt19937 rng(31);
  MhaConfig cfg{E, H, E, E, true};
  const float ws = 0.25f;
  auto inw = uniform(3 * E * E, -ws, ws, rng), inb = uniform(3 * E, -ws, ws, rng);
  auto ow = uniform(E * E, -ws, ws, rng), ob = uniform(E, -ws, ws, rng);
  MhaWeights w;
  w.in_proj_weight = inw.data(), w.in_proj_bias = inb.data(), w.out_proj_weight = ow.data(), w.out_proj_bias = ob.data();
  MultiHeadAttention layer(cfg);
  ASSERT_EQ(layer.set_weights(w), Status::kOk);
  const auto x0 = uniform(size_t(B) * L * E, -1, 1, rng), kv0 = uniform(size_t(B) * L * E, -1, 1, rng);
  std::vector<uint8_t> kp(size_t(B) * L, 0);
  for (int j = 100; j < L; ++j) kp[size_t(L) + j] = 1;
  struct P { int which, b, row, col; float value; };  // which: 0 query, 1 key (= value input)
  const P poisons[] = {{0, 1, 70, 3, NAN}, {1, 0, 130, 0, NAN}, {1, 1, 120, 5, NAN}, {1, 0, 9, 2, INFINITY}};
  for (const P& p : poisons)
    for (int masks = 0; masks < 3; ++masks)
      for (bool self : {false, true})
        for (int threads : {1, 2}) {
          auto x = x0, kv = kv0;
          (p.which == 0 || self ? x : kv)[(size_t(p.b) * L + p.row) * E + p.col] = p.value;
          MhaForwardArgs a;
          a.B = B, a.Lq = a.Lk = L, a.query = x.data();
          a.key = a.value = self ? x.data() : kv.data();
          a.mask.causal = masks != 1;
          if (masks >= 1) a.mask.key_padding = kp.data();
          a.average_weights = false;
          const size_t on = size_t(B) * L * E, wn = size_t(B) * H * L * L;
          std::vector<float> out(on), ref(on), wt(wn), wref(wn);
          a.output = ref.data(), a.weights = wref.data();
          mha_reference(cfg, w, a);
          ThreadPool pool(threads);
          Workspace work;
          a.output = out.data(), a.weights = wt.data();
          ASSERT_EQ(layer.forward(a, pool, work), Status::kOk);
          const std::string where = std::to_string(p.which) + " row " + std::to_string(p.row) + " masks " +
                                    std::to_string(masks) + " self " + std::to_string(self);
          EXPECT_LT(rel_err_nonfinite(out.data(), ref.data(), on), 1e-5) << where;
          EXPECT_LT(rel_err_nonfinite(wt.data(), wref.data(), wn), 1e-5) << where;
          // The other batch item is untouched; a NaN query row (cross-attention) poisons only its own row.
          const size_t other = (1 - p.b) * size_t(L) * E;
          EXPECT_TRUE(all_finite(out.data() + other, size_t(L) * E));
          if (p.which == 0 && !self) {
            for (int i = 0; i < L; ++i) EXPECT_EQ(std::isnan(out[(size_t(p.b) * L + i) * E]), i == p.row) << i;
          }
        }
}

TEST(MultiHeadAttention, SetWeightsRejectsMissingOrMismatched) {
  MultiHeadAttention layer(MhaConfig{8, 2, 4, 8, true});
  std::vector<float> big(3 * 64, 0.1f);
  MhaWeights w;
  w.in_proj_weight = big.data();  // kdim != E: in_proj_weight is not allowed
  w.in_proj_bias = big.data(), w.out_proj_weight = big.data(), w.out_proj_bias = big.data();
  EXPECT_EQ(layer.set_weights(w), Status::kInvalidArgument);
  w.in_proj_weight = nullptr;
  w.q_proj_weight = big.data(), w.k_proj_weight = big.data();  // v missing
  EXPECT_EQ(layer.set_weights(w), Status::kInvalidArgument);
  w.v_proj_weight = big.data();
  EXPECT_EQ(layer.set_weights(w), Status::kOk);
  EXPECT_FALSE(MultiHeadAttention::valid(MhaConfig{10, 3, 10, 10, true}));
}

}  // namespace
