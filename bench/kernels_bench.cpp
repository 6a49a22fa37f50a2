// Native benchmarks of the kernels (Google Benchmark), so kernel work can be
// profiled without a browser: the GEMM micro-kernel against its scalar
// reference, the GEMM and GEMV on float32, float16 and int8 weights, the
// softmax row operations, attention alone, the whole layer and a decoding step
// (those two with each weight type).
// The native build uses the same xsimd sse4_1 code path the wasm builds use.
//
//   npm run build -- --native && build/native/kernels_bench [--benchmark_filter=Gemm]
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <vector>

#include "attention.h"
#include "kernels.h"
#include "kernels_ref.h"
#include "linear.h"
#include "mha.h"
#include "model.h"
#include "thread_pool.h"
#include "transformer.h"
#include "workspace.h"

namespace {

std::vector<float> random_vector(size_t n, float lo = -1.f, float hi = 1.f, unsigned seed = 1) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// C[M x N] = A[M x K] * B[K x N] on packed panels: the projections' GEMM.
template <bool kRef>
void BM_Gemm(benchmark::State& st) {
  const int M = st.range(0), N = st.range(1), K = st.range(2);
  auto a = random_vector(size_t(M) * K), b = random_vector(size_t(K) * N, -1, 1, 2);
  std::vector<float> bp(mha::kernels::packed_size(K, N)), c(size_t(M) * N);
  mha::kernels::pack_panels(K, N, b.data(), N, 1, bp.data());
  const size_t panel = size_t(K) * mha::kernels::kNR;
  for (auto _ : st) {
    if (kRef)
      mha::kernels::gemm_ref(M, N, K, a.data(), K, bp.data(), panel, c.data(), N, false, nullptr);
    else
      mha::kernels::gemm(M, N, K, a.data(), K, bp.data(), panel, c.data(), N, false, nullptr);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * M * N * K, benchmark::Counter::kIsIterationInvariantRate,
                                              benchmark::Counter::kIs1000);
}
BENCHMARK(BM_Gemm<false>)->Name("Gemm/simd")->Args({128, 768, 768})->Args({64, 256, 256})->Args({512, 64, 64})
    ->Args({4, 8, 256})->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Gemm<true>)->Name("Gemm/scalar_ref")->Args({128, 768, 768})->Args({64, 256, 256})->Unit(benchmark::kMicrosecond);

// C[M x N] = A[M x K] W^T with W [N, K] stored as float32, float16 or int8
// (PackedMatrix), one thread: a projection (M = 128) and a decoding step's
// feed-forward GEMVs (M = 1, K = 1024 -> N = 4096 and back).
void BM_WeightGemm(benchmark::State& st) {
  const int M = st.range(0), N = st.range(1), K = st.range(2);
  const auto type = static_cast<mha::WeightType>(st.range(3));
  auto a = random_vector(size_t(M) * K), w = random_vector(size_t(N) * K, -1, 1, 2);
  std::vector<float> c(size_t(M) * N);
  mha::PackedMatrix p;
  if (p.reserve(K, N, type) != mha::Status::kOk || p.fill(0, N, w.data()) != mha::Status::kOk)
    return st.SkipWithError("packing failed");
  const mha::Gemm g = p.gemm(M, a.data(), K, c.data(), N, 0, N, nullptr);
  const mha::GemmSplit one = mha::split_gemm(M, N, 1);
  for (auto _ : st) {
    mha::gemm_tile(g, one, 0);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * M * N * K, benchmark::Counter::kIsIterationInvariantRate,
                                              benchmark::Counter::kIs1000);
}
// The same GEMV over weights that come from memory, as in decoding a model that
// does not fit in the caches: matrices of 128 MB in all, used in turn.
void BM_WeightGemvFromMemory(benchmark::State& st) {
  const int N = st.range(0), K = st.range(1);
  const auto type = static_cast<mha::WeightType>(st.range(2));
  const int copies = static_cast<int>((uint64_t(128) << 20) / mha::PackedMatrix::bytes(K, N, type)) + 1;
  auto a = random_vector(size_t(K)), w = random_vector(size_t(N) * K, -1, 1, 2);
  std::vector<float> c(static_cast<size_t>(N));
  std::vector<mha::PackedMatrix> p(copies);
  for (auto& m : p)
    if (m.reserve(K, N, type) != mha::Status::kOk || m.fill(0, N, w.data()) != mha::Status::kOk)
      return st.SkipWithError("packing failed");
  const mha::GemmSplit one = mha::split_gemm(1, N, 1);
  int i = 0;
  for (auto _ : st) {
    mha::gemm_tile(p[i].gemm(1, a.data(), K, c.data(), N, 0, N, nullptr), one, 0);
    i = (i + 1) % copies;
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  st.counters["GB/s"] = benchmark::Counter(double(mha::PackedMatrix::bytes(K, N, type)), benchmark::Counter::kIsIterationInvariantRate,
                                           benchmark::Counter::kIs1024);
}
BENCHMARK(BM_WeightGemvFromMemory)->ArgNames({"N", "K", "wtype"})->ArgsProduct({{4096}, {1024}, {0, 1, 2}})
    ->ArgsProduct({{1024}, {4096}, {0, 1, 2}})->Unit(benchmark::kMicrosecond);

BENCHMARK(BM_WeightGemm)->ArgNames({"M", "N", "K", "wtype"})
    ->ArgsProduct({{128}, {768}, {768}, {0, 1, 2}})->ArgsProduct({{128}, {2304}, {768}, {0, 1, 2}})
    ->ArgsProduct({{1}, {4096}, {1024}, {0, 1, 2}})
    ->ArgsProduct({{1}, {1024}, {4096}, {0, 1, 2}})->ArgsProduct({{1}, {49152}, {576}, {0, 2}})  // a small LM's head
    ->Unit(benchmark::kMicrosecond);

// The softmax row: max, then exp(x - max) with its sum, then the scale.
template <bool kRef>
void BM_SoftmaxRow(benchmark::State& st) {
  const int n = st.range(0);
  auto x0 = random_vector(n, -20, 20);
  std::vector<float> x(n);
  for (auto _ : st) {
    x = x0;
    float m = kRef ? mha::kernels::max_row_ref(x.data(), n) : mha::kernels::max_row(x.data(), n);
    float s = kRef ? mha::kernels::exp_shift_sum_ref(x.data(), n, m) : mha::kernels::exp_shift_sum(x.data(), n, m);
    if (kRef)
      mha::kernels::scale_row_ref(x.data(), n, 1.f / s);
    else
      mha::kernels::scale_row(x.data(), n, 1.f / s);
    benchmark::DoNotOptimize(x.data());
  }
  st.SetItemsProcessed(int64_t(st.iterations()) * n);
}
BENCHMARK(BM_SoftmaxRow<false>)->Name("SoftmaxRow/simd")->Arg(128)->Arg(2048);
BENCHMARK(BM_SoftmaxRow<true>)->Name("SoftmaxRow/scalar_ref")->Arg(128)->Arg(2048);

// Scaled dot-product attention alone: B=1, H heads of size D over L tokens.
void BM_Attention(benchmark::State& st) {
  const int H = st.range(0), L = st.range(1), D = st.range(2), threads = st.range(4);
  const bool causal = st.range(3) != 0;
  auto q = random_vector(size_t(H) * L * D), k = random_vector(size_t(H) * L * D, -1, 1, 2),
       v = random_vector(size_t(H) * L * D, -1, 1, 3);
  std::vector<float> out(size_t(H) * L * D);
  mha::ThreadPool pool(threads);
  mha::Workspace ws;
  mha::AttentionArgs a;
  a.B = 1, a.H = H, a.Lq = a.Lk = L, a.D = a.Dv = D;
  const size_t sh = size_t(L) * D;
  a.q = {q.data(), sh * H, sh, size_t(D)};
  a.k = {k.data(), sh * H, sh, size_t(D)};
  a.v = {v.data(), sh * H, sh, size_t(D)};
  a.out = out.data(), a.o_sb = sh * H, a.o_sh = sh, a.o_sl = D;
  a.scale = 1.f / std::sqrt(float(D));
  a.mask.causal = causal;
  for (auto _ : st) {
    if (mha::Attention::run(a, pool, ws) != mha::Status::kOk) st.SkipWithError("attention failed");
    benchmark::DoNotOptimize(out.data());
  }
  st.counters["GFLOP/s"] = benchmark::Counter(4.0 * H * double(L) * L * D, benchmark::Counter::kIsIterationInvariantRate,
                                              benchmark::Counter::kIs1000);
}
BENCHMARK(BM_Attention)->ArgNames({"H", "L", "D", "causal", "threads"})
    ->Args({12, 128, 64, 0, 1})->Args({12, 512, 64, 0, 1})->Args({12, 512, 64, 1, 1})->Args({4, 2048, 64, 0, 1})
    ->Args({4, 2048, 64, 0, 2})->Unit(benchmark::kMillisecond);

// The whole layer (self-attention, four projections): the shapes of the performance issue.
void BM_Layer(benchmark::State& st) {
  const int B = st.range(0), L = st.range(1), E = st.range(2), H = st.range(3), threads = st.range(5);
  const bool causal = st.range(4) != 0;
  mha::MhaConfig cfg{E, H, E, E, true};
  cfg.weight_type = static_cast<mha::WeightType>(st.range(6));
  mha::MultiHeadAttention layer(cfg);
  const float s = 1.f / std::sqrt(float(E));
  auto w_in = random_vector(size_t(3) * E * E, -s, s), b_in = random_vector(size_t(3) * E, -s, s, 2),
       w_out = random_vector(size_t(E) * E, -s, s, 3), b_out = random_vector(E, -s, s, 4);
  mha::MhaWeights w;
  w.in_proj_weight = w_in.data(), w.in_proj_bias = b_in.data(), w.out_proj_weight = w_out.data(), w.out_proj_bias = b_out.data();
  if (layer.set_weights(w) != mha::Status::kOk) return st.SkipWithError("set_weights failed");
  auto x = random_vector(size_t(B) * L * E, -1, 1, 5);
  std::vector<float> out(x.size());
  mha::ThreadPool pool(threads);
  mha::Workspace ws;
  mha::MhaForwardArgs f;
  f.B = B, f.Lq = f.Lk = L, f.query = f.key = f.value = x.data(), f.output = out.data();
  f.mask.causal = causal;
  for (auto _ : st) {
    if (layer.forward(f, pool, ws) != mha::Status::kOk) st.SkipWithError("forward failed");
    benchmark::DoNotOptimize(out.data());
  }
  const double flops = 8.0 * B * L * double(E) * E + 4.0 * B * double(L) * L * E;
  st.counters["GFLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}
BENCHMARK(BM_Layer)->ArgNames({"B", "L", "E", "H", "causal", "threads", "wtype"})
    ->Args({1, 128, 768, 12, 0, 1, 0})->Args({1, 512, 768, 12, 0, 1, 0})->Args({8, 64, 256, 4, 0, 1, 0})
    ->Args({1, 2048, 256, 4, 0, 1, 0})->Args({1, 32, 64, 2, 0, 1, 0})->Args({1, 512, 768, 12, 1, 1, 0})
    ->Args({1, 128, 768, 12, 0, 2, 0})->Args({1, 128, 768, 12, 0, 1, 1})->Args({1, 128, 768, 12, 0, 1, 2})
    ->Args({1, 2048, 256, 4, 0, 1, 1})->Args({1, 2048, 256, 4, 0, 1, 2})
    ->Unit(benchmark::kMillisecond);

// One cached decoding step of a pre-norm TransformerEncoderLayer (the shape of
// npm run bench:decode's thread target): the new position attends over `cached`
// to `cached` + 7 earlier ones (every 8 steps the cache is reset and refilled
// with the prefix, outside the timed region).
void BM_DecodeStep(benchmark::State& st) {
  const int E = st.range(0), F = st.range(1), cached = st.range(2), threads = st.range(3), H = E / 64;
  mha::EncoderConfig cfg;
  cfg.d_model = E, cfg.nhead = H, cfg.dim_feedforward = F, cfg.norm_first = true;
  cfg.weight_type = static_cast<mha::WeightType>(st.range(4));
  mha::TransformerEncoderLayer layer(cfg);
  const float s = 1.f / std::sqrt(float(E));
  auto in_w = random_vector(size_t(3) * E * E, -s, s), in_b = random_vector(size_t(3) * E, -s, s, 2),
       out_w = random_vector(size_t(E) * E, -s, s, 3), out_b = random_vector(E, -s, s, 4),
       l1_w = random_vector(size_t(F) * E, -s, s, 5), l1_b = random_vector(F, -s, s, 6),
       l2_w = random_vector(size_t(E) * F, -s, s, 7), l2_b = random_vector(E, -s, s, 8), n_w = random_vector(E, 0.5f, 1.5f, 9),
       n_b = random_vector(E, -0.5f, 0.5f, 10);
  mha::EncoderWeights w;
  w.self_attn.in_proj_weight = in_w.data(), w.self_attn.in_proj_bias = in_b.data();
  w.self_attn.out_proj_weight = out_w.data(), w.self_attn.out_proj_bias = out_b.data();
  w.linear1_weight = l1_w.data(), w.linear1_bias = l1_b.data(), w.linear2_weight = l2_w.data(), w.linear2_bias = l2_b.data();
  w.norm1_weight = w.norm2_weight = n_w.data(), w.norm1_bias = w.norm2_bias = n_b.data();
  if (layer.set_weights(w) != mha::Status::kOk) return st.SkipWithError("set_weights failed");
  auto x = random_vector(size_t(cached + 1) * E, -1, 1, 11);
  std::vector<float> out(x.size());
  mha::ThreadPool pool(threads);
  mha::Workspace ws;
  mha::KVCache cache;
  if (cache.init(1, cached + 8, E) != mha::Status::kOk) return st.SkipWithError("cache failed");
  mha::EncoderForwardArgs prefix;
  prefix.B = 1, prefix.L = cached, prefix.src = x.data(), prefix.output = out.data(), prefix.cache = &cache;
  prefix.mask.causal = true;
  mha::EncoderForwardArgs step = prefix;
  step.L = 1, step.src = x.data() + size_t(cached) * E;
  for (auto _ : st) {
    if (cache.length() == cache.capacity() || cache.length() < cached) {
      st.PauseTiming();
      cache.reset();
      if (layer.forward(prefix, pool, ws) != mha::Status::kOk) st.SkipWithError("prefix failed");
      st.ResumeTiming();
    }
    if (layer.forward(step, pool, ws) != mha::Status::kOk) st.SkipWithError("step failed");
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_DecodeStep)->ArgNames({"E", "F", "cached", "threads", "wtype"})
    ->ArgsProduct({{1024}, {4096}, {256}, {1, 2}, {0, 1, 2}})->Args({256, 1024, 256, 1, 0})->Args({256, 1024, 256, 2, 0})
    ->Iterations(64)->Unit(benchmark::kMillisecond)->UseRealTime();

// One greedy decoding step of a whole model with SmolLM-135M's shapes (Llama:
// hidden 576, 30 blocks, 9 heads, 3 KV heads, FF 1536, vocab 49152, tied head):
// what npm run bench:models times per token. The cache holds `cached` to
// `cached` + 15 positions (every 16 steps it is reset and refilled with the
// prefix, outside the timed region). Every block gets the same random weights
// (each packs its own copy, so a step reads as many bytes as the real model).
void BM_ModelDecodeStep(benchmark::State& st) {
  const int cached = st.range(0), threads = st.range(1);
  mha::ModelConfig c;
  c.vocab = 49152, c.hidden = 576, c.layers = 30, c.rms_norm = true, c.norm_eps = 1e-5f, c.head = mha::ModelConfig::kTied;
  c.attention.embed_dim = c.attention.kdim = c.attention.vdim = c.hidden;
  c.attention.num_heads = 9, c.attention.num_kv_heads = 3, c.attention.head_dim = 64, c.attention.rope_dim = 64;
  c.attention.bias = false;
  c.attention.weight_type = static_cast<mha::WeightType>(st.range(2));
  c.ffn.d_model = c.hidden, c.ffn.dim_feedforward = 1536, c.ffn.gated = true, c.ffn.activation = mha::Activation::kSilu;
  c.ffn.bias = false, c.ffn.weight_type = c.attention.weight_type;
  if (!mha::Model::valid(c)) return st.SkipWithError("invalid config");
  const int H = c.hidden, F = c.ffn.dim_feedforward, nk = 3 * 64;
  const float s = 1.f / std::sqrt(float(H));
  auto tokens = random_vector(size_t(c.vocab) * H, -1, 1, 1), q = random_vector(size_t(H) * H, -s, s, 2),
       k = random_vector(size_t(nk) * H, -s, s, 3), v = random_vector(size_t(nk) * H, -s, s, 4),
       o = random_vector(size_t(H) * H, -s, s, 5), gate = random_vector(size_t(F) * H, -s, s, 6),
       up = random_vector(size_t(F) * H, -s, s, 7), down = random_vector(size_t(H) * F, -s, s, 8),
       norm = random_vector(H, 0.5f, 1.5f, 9);
  std::vector<double> inv_freq;
  for (int i = 0; i < 32; ++i) inv_freq.push_back(std::pow(10000.0, -2.0 * i / 64));
  mha::Model model(c);
  mha::EmbeddingWeights e;
  e.tokens = tokens.data();
  bool ok = model.set_embeddings(e) == mha::Status::kOk && model.set_final_norm(norm.data(), nullptr) == mha::Status::kOk;
  for (int i = 0; ok && i < c.layers; ++i) {
    mha::BlockWeights w;
    w.norm1_weight = w.norm2_weight = norm.data();
    w.attention.q_proj_weight = q.data(), w.attention.k_proj_weight = k.data(), w.attention.v_proj_weight = v.data();
    w.attention.out_proj_weight = o.data(), w.attention.rope_inv_freq = inv_freq.data();
    w.ffn.gate_weight = gate.data(), w.ffn.up_weight = up.data(), w.ffn.down_weight = down.data();
    ok = model.set_block(i, w) == mha::Status::kOk;
  }
  if (!ok || !model.ready()) return st.SkipWithError("set weights failed");
  mha::ThreadPool pool(threads);
  mha::Workspace ws;
  mha::ModelCache cache(c, 1, cached + 16);
  std::vector<int32_t> ids(cached + 16);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(i * 7919 % c.vocab);
  std::vector<float> logits(c.vocab);
  mha::ModelForwardArgs prefix;
  prefix.B = 1, prefix.L = cached, prefix.ids = ids.data(), prefix.cache = &cache, prefix.output = logits.data();
  prefix.last_only = true;
  for (auto _ : st) {
    if (cache.length() == cache.capacity() || cache.length() < cached) {
      st.PauseTiming();
      cache.reset();
      if (model.forward(prefix, pool, ws) != mha::Status::kOk) st.SkipWithError("prefix failed");
      st.ResumeTiming();
    }
    mha::ModelForwardArgs step = prefix;
    step.L = 1, step.ids = ids.data() + cache.length();
    if (model.forward(step, pool, ws) != mha::Status::kOk) st.SkipWithError("step failed");
    benchmark::DoNotOptimize(logits.data());
  }
}
BENCHMARK(BM_ModelDecodeStep)->ArgNames({"cached", "threads", "wtype"})->ArgsProduct({{128}, {1, 2}, {0, 2}})
    ->Iterations(96)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
