#include "transformer.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels.h"
#include "linear.h"

namespace mha {

Status Linear::set_weights(const float* w, const float* b) {
  if (!w) return Status::kInvalidArgument;
  if (!w_.reserve(kernels::packed_size(in_, out_)) || (b && !b_.reserve(out_))) return Status::kOutOfMemory;
  pack_weight_transposed(out_, in_, w, w_.data());
  has_bias_ = b != nullptr;
  if (b) std::memcpy(b_.data(), b, sizeof(float) * out_);
  return Status::kOk;
}

void Linear::forward(ThreadPool& pool, int M, const float* x, size_t ldx, float* y, size_t ldy) const {
  parallel_gemm(pool, M, out_, in_, x, ldx, w_.data(), static_cast<size_t>(in_) * kernels::kNR, y, ldy,
                has_bias_ ? b_.data() : nullptr);
}

bool TransformerEncoderLayer::valid(const EncoderConfig& c) {
  return c.d_model > 0 && c.nhead > 0 && c.d_model % c.nhead == 0 && c.dim_feedforward > 0 && c.layer_norm_eps > 0;
}

TransformerEncoderLayer::TransformerEncoderLayer(const EncoderConfig& cfg)
    : cfg_(cfg),
      attn_({cfg.d_model, cfg.nhead, cfg.d_model, cfg.d_model, cfg.bias}),
      linear1_(cfg.d_model, cfg.dim_feedforward),
      linear2_(cfg.dim_feedforward, cfg.d_model) {}

size_t TransformerEncoderLayer::memory_bytes() const {
  return attn_.memory_bytes() + linear1_.memory_bytes() + linear2_.memory_bytes() + norms_.bytes() + h_.bytes() +
         t_.bytes() + ff_.bytes();
}

Status TransformerEncoderLayer::set_weights(const EncoderWeights& w) {
  const int E = cfg_.d_model;
  has_weights_ = false;
  if (!w.linear1_weight || !w.linear2_weight || !w.norm1_weight || !w.norm2_weight) return Status::kInvalidArgument;
  if (cfg_.bias && (!w.linear1_bias || !w.linear2_bias || !w.norm1_bias || !w.norm2_bias)) return Status::kInvalidArgument;
  Status s = attn_.set_weights(w.self_attn);
  if (s == Status::kOk) s = linear1_.set_weights(w.linear1_weight, cfg_.bias ? w.linear1_bias : nullptr);
  if (s == Status::kOk) s = linear2_.set_weights(w.linear2_weight, cfg_.bias ? w.linear2_bias : nullptr);
  if (s == Status::kOk && !norms_.reserve(4 * static_cast<size_t>(E))) s = Status::kOutOfMemory;
  if (s != Status::kOk) return s;
  float* n = norms_.data();
  std::memcpy(n, w.norm1_weight, sizeof(float) * E);
  std::memcpy(n + 2 * E, w.norm2_weight, sizeof(float) * E);
  for (int k : {1, 3}) {
    const float* b = k == 1 ? w.norm1_bias : w.norm2_bias;
    if (cfg_.bias) std::memcpy(n + k * E, b, sizeof(float) * E);
    else std::fill(n + k * E, n + (k + 1) * E, 0.0f);
  }
  has_weights_ = true;
  return Status::kOk;
}

Status TransformerEncoderLayer::forward(const EncoderForwardArgs& a, ThreadPool& pool) {
  if (!has_weights_) return Status::kNoWeights;
  if (a.B <= 0 || a.L <= 0 || !a.src || !a.output || a.output == a.src) return Status::kInvalidArgument;
  const int E = cfg_.d_model, F = cfg_.dim_feedforward;
  const uint64_t M64 = static_cast<uint64_t>(a.B) * a.L;
  last_request_bytes_ = (2 * M64 * E + M64 * F) * sizeof(float);
  if (!h_.reserve(M64 * E) || !t_.reserve(M64 * E) || !ff_.reserve(M64 * F)) return Status::kOutOfMemory;
  const int M = static_cast<int>(M64);
  const float *g1 = norms_.data(), *b1 = g1 + E, *g2 = b1 + E, *b2 = g2 + E;
  const float eps = cfg_.layer_norm_eps;
  float *h = h_.data(), *t = t_.data(), *ff = ff_.data(), *out = a.output;
  auto norm_rows = [&](const float* x, const float* g, const float* b, float* y) {
    pool.parallel_for(M, [&](int i, int) {
      kernels::layer_norm_row(x + static_cast<size_t>(i) * E, E, g, b, eps, y + static_cast<size_t>(i) * E);
    }, M64 * E >= 1 << 16);
  };
  auto self_attn = [&](const float* x, float* y) {
    MhaForwardArgs f;
    f.B = a.B, f.Lq = f.Lk = a.L, f.query = f.key = f.value = x, f.output = y, f.mask = a.mask;
    const Status s = attn_.forward(f, pool);
    if (s == Status::kOutOfMemory) last_request_bytes_ += attn_.last_request_bytes();
    return s;
  };
  auto feed_forward = [&](const float* x, float* y) {  // y = linear2(act(linear1(x)))
    linear1_.forward(pool, M, x, E, ff, F);
    pool.parallel_for(M, [&](int i, int) {
      float* row = ff + static_cast<size_t>(i) * F;
      if (cfg_.activation == Activation::kRelu) kernels::relu_row(row, F);
      else kernels::gelu_row(row, F);
    }, M64 * F >= 1 << 16);
    linear2_.forward(pool, M, ff, F, y, E);
  };
  const size_t n = static_cast<size_t>(M) * E;
  if (!cfg_.norm_first) {
    Status s = self_attn(a.src, t);                                // t = sa(x)
    if (s != Status::kOk) return s;
    kernels::add_row(t, a.src, static_cast<int>(n));               // t = x + sa(x)  (n < 2^31: M*E fits the buffers)
    norm_rows(t, g1, b1, h);                                       // h = norm1(...)
    feed_forward(h, t);                                            // t = ff(h)
    kernels::add_row(t, h, static_cast<int>(n));
    norm_rows(t, g2, b2, out);                                     // out = norm2(h + ff(h))
  } else {
    norm_rows(a.src, g1, b1, t);                                   // t = norm1(x)
    Status s = self_attn(t, h);                                    // h = sa(norm1(x))
    if (s != Status::kOk) return s;
    kernels::add_row(h, a.src, static_cast<int>(n));               // h = x + sa(norm1(x))
    norm_rows(h, g2, b2, t);                                       // t = norm2(h)
    feed_forward(t, out);                                          // out = ff(norm2(h))
    kernels::add_row(out, h, static_cast<int>(n));                 // out = h + ff(norm2(h))
  }
  last_request_bytes_ = 0;
  return Status::kOk;
}

void encoder_reference(const EncoderConfig& c, const EncoderWeights& w, const EncoderForwardArgs& a) {
  const int E = c.d_model, F = c.dim_feedforward;
  const size_t M = static_cast<size_t>(a.B) * a.L;
  auto norm = [&](const std::vector<double>& x, const float* g, const float* b) {
    std::vector<double> y(x.size());
    for (size_t i = 0; i < M; ++i) {
      double mean = 0, var = 0;
      for (int k = 0; k < E; ++k) mean += x[i * E + k];
      mean /= E;
      for (int k = 0; k < E; ++k) var += (x[i * E + k] - mean) * (x[i * E + k] - mean);
      const double inv = 1 / std::sqrt(var / E + c.layer_norm_eps);
      for (int k = 0; k < E; ++k) y[i * E + k] = (x[i * E + k] - mean) * inv * g[k] + (c.bias ? b[k] : 0.0);
    }
    return y;
  };
  auto sa = [&](const std::vector<double>& x) {
    std::vector<float> xf(x.begin(), x.end()), y(M * E);
    MhaForwardArgs f;
    f.B = a.B, f.Lq = f.Lk = a.L, f.query = f.key = f.value = xf.data(), f.output = y.data(), f.mask = a.mask;
    mha_reference({E, c.nhead, E, E, c.bias}, w.self_attn, f);  // float64 inside, float32 out
    return std::vector<double>(y.begin(), y.end());
  };
  auto ffn = [&](const std::vector<double>& x) {
    std::vector<double> hid(M * F), y(M * E);
    for (size_t i = 0; i < M; ++i) {
      for (int n = 0; n < F; ++n) {
        double s = c.bias ? w.linear1_bias[n] : 0.0;
        for (int k = 0; k < E; ++k) s += x[i * E + k] * w.linear1_weight[static_cast<size_t>(n) * E + k];
        hid[i * F + n] = c.activation == Activation::kRelu ? std::max(s, 0.0) : 0.5 * s * (1 + std::erf(s / std::sqrt(2.0)));
      }
      for (int n = 0; n < E; ++n) {
        double s = c.bias ? w.linear2_bias[n] : 0.0;
        for (int k = 0; k < F; ++k) s += hid[i * F + k] * w.linear2_weight[static_cast<size_t>(n) * F + k];
        y[i * E + n] = s;
      }
    }
    return y;
  };
  auto add = [](std::vector<double> x, const std::vector<double>& y) {
    for (size_t i = 0; i < x.size(); ++i) x[i] += y[i];
    return x;
  };
  std::vector<double> x(a.src, a.src + M * E), y;
  if (!c.norm_first) {
    const auto h = norm(add(x, sa(x)), w.norm1_weight, w.norm1_bias);
    y = norm(add(h, ffn(h)), w.norm2_weight, w.norm2_bias);
  } else {
    const auto h = add(x, sa(norm(x, w.norm1_weight, w.norm1_bias)));
    y = add(h, ffn(norm(h, w.norm2_weight, w.norm2_bias)));
  }
  for (size_t i = 0; i < M * E; ++i) a.output[i] = static_cast<float>(y[i]);
}

}  // namespace mha
