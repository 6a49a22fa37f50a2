#include "reference.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace mha {

bool reference_softmax_row(const MaskArgs& m, int H, int Lq, int Lk, int b, int h, int i, double scale,
                           const std::function<double(int)>& dot, std::vector<double>& p, float* weights,
                           bool average) {
  p.assign(Lk, 0.0);
  const long diag = causal_diagonal(m, Lq, Lk);
  double mx = -INFINITY;
  bool nan = false, visible = false;
  for (int j = 0; j < Lk; ++j) {
    double d = dot(j) * scale;
    const size_t moff = b * m.sb + h * m.sh + i * m.sl + j;
    const bool hidden = (m.bool_mask && m.bool_mask[moff]) ||
                        (m.key_padding && m.key_padding[static_cast<size_t>(b) * Lk + j]) || (m.causal && j > i + diag);
    if (m.float_mask) d += m.float_mask[moff];
    if (hidden) d += -INFINITY;  // added, as PyTorch adds a bool mask: NaN stays NaN
    visible |= !hidden && !(m.float_mask && m.float_mask[moff] == -INFINITY);
    p[j] = d;
    if (std::isnan(d)) nan = true;
    else mx = std::max(mx, d);
  }
  if (!visible || (!nan && mx == -INFINITY)) {  // attends to nothing
    std::fill(p.begin(), p.end(), 0.0);
    return false;
  }
  if (nan) mx = NAN;  // softmax of a row holding NaN: NaN everywhere
  double sum = 0;
  for (int j = 0; j < Lk; ++j) sum += p[j] = std::exp(p[j] - mx);
  for (int j = 0; j < Lk; ++j) p[j] /= sum;
  if (weights) {
    float* w = average ? weights + (static_cast<size_t>(b) * Lq + i) * Lk
                       : weights + ((static_cast<size_t>(b) * H + h) * Lq + i) * Lk;
    for (int j = 0; j < Lk; ++j) w[j] += static_cast<float>(p[j] / (average ? H : 1));
  }
  return true;
}

void attention_reference(const AttentionArgs& a) {
  std::vector<double> p;
  if (a.weights) std::fill(a.weights, a.weights + static_cast<size_t>(a.B) * (a.average_weights ? 1 : a.H) * a.Lq * a.Lk, 0.0f);
  for (int b = 0; b < a.B; ++b)
    for (int h = 0; h < a.H; ++h)
      for (int i = 0; i < a.Lq; ++i) {
        const float* q = a.q.data + b * a.q.sb + h * a.q.sh + i * a.q.sl;
        auto dot = [&](int j) {
          const float* k = a.k.data + b * a.k.sb + h * a.k.sh + j * a.k.sl;
          double d = 0;
          for (int c = 0; c < a.D; ++c) d += static_cast<double>(q[c]) * k[c];
          return d;
        };
        const bool attends =
            reference_softmax_row(a.mask, a.H, a.Lq, a.Lk, b, h, i, a.scale, dot, p, a.weights, a.average_weights);
        float* o = a.out + b * a.o_sb + h * a.o_sh + i * a.o_sl;
        for (int c = 0; c < a.Dv; ++c) {
          double acc = 0;  // over every key: 0 * NaN = NaN
          for (int j = 0; attends && j < a.Lk; ++j) acc += p[j] * a.v.data[b * a.v.sb + h * a.v.sh + j * a.v.sl + c];
          o[c] = static_cast<float>(acc);
        }
      }
}

void mha_reference(const MhaConfig& c, const MhaWeights& w, const MhaForwardArgs& a) {
  const int E = c.embed_dim, H = c.num_heads, D = E / H;
  const size_t E2 = static_cast<size_t>(E) * E;
  auto linear = [&](auto x, int M, int K, const float* W, const float* b, std::vector<double>& y) {
    y.assign(static_cast<size_t>(M) * E, 0.0);
    for (int i = 0; i < M; ++i)
      for (int n = 0; n < E; ++n) {
        double s = b ? b[n] : 0.0;
        for (int k = 0; k < K; ++k) s += static_cast<double>(x[static_cast<size_t>(i) * K + k]) * W[static_cast<size_t>(n) * K + k];
        y[static_cast<size_t>(i) * E + n] = s;
      }
  };
  const float* wq = w.in_proj_weight ? w.in_proj_weight : w.q_proj_weight;
  const float* wk = w.in_proj_weight ? w.in_proj_weight + E2 : w.k_proj_weight;
  const float* wv = w.in_proj_weight ? w.in_proj_weight + 2 * E2 : w.v_proj_weight;
  const float* bi = c.bias ? w.in_proj_bias : nullptr;
  std::vector<double> q, k, v;
  linear(a.query, a.B * a.Lq, E, wq, bi, q);
  linear(a.key, a.B * a.Lk, c.kdim, wk, bi ? bi + E : nullptr, k);
  linear(a.value, a.B * a.Lk, c.vdim, wv, bi ? bi + 2 * E : nullptr, v);
  // Attention in double, then project back.
  std::vector<double> attn(static_cast<size_t>(a.B) * a.Lq * E);
  std::vector<double> p;
  if (a.weights)
    std::fill(a.weights, a.weights + static_cast<size_t>(a.B) * (a.average_weights ? 1 : H) * a.Lq * a.Lk, 0.0f);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  for (int b = 0; b < a.B; ++b)
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < a.Lq; ++i) {
        const double* qi = &q[(static_cast<size_t>(b) * a.Lq + i) * E + h * D];
        auto dot = [&](int j) {
          const double* kj = &k[(static_cast<size_t>(b) * a.Lk + j) * E + h * D];
          double d = 0;
          for (int t = 0; t < D; ++t) d += qi[t] * kj[t];
          return d;
        };
        const bool attends =
            reference_softmax_row(a.mask, H, a.Lq, a.Lk, b, h, i, scale, dot, p, a.weights, a.average_weights);
        for (int t = 0; t < D; ++t) {
          double acc = 0;  // over every key: 0 * NaN = NaN
          for (int j = 0; attends && j < a.Lk; ++j)
            acc += p[j] * v[(static_cast<size_t>(b) * a.Lk + j) * E + h * D + t];
          attn[(static_cast<size_t>(b) * a.Lq + i) * E + h * D + t] = acc;
        }
      }
  std::vector<double> out;
  linear(attn.data(), a.B * a.Lq, E, w.out_proj_weight, c.bias ? w.out_proj_bias : nullptr, out);
  for (size_t i = 0; i < out.size(); ++i) a.output[i] = static_cast<float>(out[i]);
}

namespace {
// Float64 building blocks of the references.
struct Ref {
  int E, F;
  size_t M;
  const EncoderConfig& c;
  std::vector<double> norm(const std::vector<double>& x, const float* g, const float* b) const {
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
  }
  // Attention of x ([B, Lq, E]) over kv ([B, Lk, E]) through mha_reference (float64 inside).
  std::vector<double> attend(const MhaWeights& w, int B, int Lq, int Lk, const std::vector<double>& x,
                             const std::vector<double>* kv, const MaskArgs& m) const {
    std::vector<float> xf(x.begin(), x.end()), kvf, y(static_cast<size_t>(B) * Lq * E);
    if (kv) kvf.assign(kv->begin(), kv->end());
    MhaForwardArgs f;
    f.B = B, f.Lq = Lq, f.Lk = Lk, f.query = xf.data(), f.key = f.value = kv ? kvf.data() : xf.data();
    f.output = y.data(), f.mask = m;
    mha_reference({E, c.nhead, E, E, c.bias}, w, f);
    return std::vector<double>(y.begin(), y.end());
  }
  std::vector<double> ffn(const std::vector<double>& x, const float* w1, const float* b1, const float* w2, const float* b2) const {
    std::vector<double> hid(M * F), y(M * E);
    for (size_t i = 0; i < M; ++i) {
      for (int n = 0; n < F; ++n) {
        double s = c.bias ? b1[n] : 0.0;
        for (int k = 0; k < E; ++k) s += x[i * E + k] * w1[static_cast<size_t>(n) * E + k];
        hid[i * F + n] = activation_reference(c.activation, s);
      }
      for (int n = 0; n < E; ++n) {
        double s = c.bias ? b2[n] : 0.0;
        for (int k = 0; k < F; ++k) s += hid[i * F + k] * w2[static_cast<size_t>(n) * F + k];
        y[i * E + n] = s;
      }
    }
    return y;
  }
  static std::vector<double> add(std::vector<double> x, const std::vector<double>& y) {
    for (size_t i = 0; i < x.size(); ++i) x[i] += y[i];
    return x;
  }
};
}  // namespace

void encoder_reference(const EncoderConfig& c, const EncoderWeights& w, const EncoderForwardArgs& a) {
  const Ref r{c.d_model, c.dim_feedforward, static_cast<size_t>(a.B) * a.L, c};
  std::vector<double> x(a.src, a.src + r.M * r.E), y;
  auto sa = [&](const std::vector<double>& v) { return r.attend(w.self_attn, a.B, a.L, a.L, v, nullptr, a.mask); };
  auto ff = [&](const std::vector<double>& v) { return r.ffn(v, w.linear1_weight, w.linear1_bias, w.linear2_weight, w.linear2_bias); };
  if (!c.norm_first) {
    const auto h = r.norm(Ref::add(x, sa(x)), w.norm1_weight, w.norm1_bias);
    y = r.norm(Ref::add(h, ff(h)), w.norm2_weight, w.norm2_bias);
  } else {
    const auto h = Ref::add(x, sa(r.norm(x, w.norm1_weight, w.norm1_bias)));
    y = Ref::add(h, ff(r.norm(h, w.norm2_weight, w.norm2_bias)));
  }
  std::copy(y.begin(), y.end(), a.output);
}

void decoder_reference(const DecoderConfig& c, const DecoderWeights& w, const DecoderForwardArgs& a) {
  const Ref r{c.d_model, c.dim_feedforward, static_cast<size_t>(a.B) * a.T, c};
  std::vector<double> x(a.tgt, a.tgt + r.M * r.E), mem(a.memory, a.memory + static_cast<size_t>(a.B) * a.S * r.E), y;
  auto sa = [&](const std::vector<double>& v) { return r.attend(w.self_attn, a.B, a.T, a.T, v, nullptr, a.tgt_mask); };
  const MaskArgs memory_mask = cross_mask(a.memory_mask, 0);
  auto ca = [&](const std::vector<double>& v) { return r.attend(w.cross_attn, a.B, a.T, a.S, v, &mem, memory_mask); };
  auto ff = [&](const std::vector<double>& v) { return r.ffn(v, w.linear1_weight, w.linear1_bias, w.linear2_weight, w.linear2_bias); };
  auto norm = [&](const std::vector<double>& v, int i) { return r.norm(v, w.norm_weight[i], w.norm_bias[i]); };
  if (!c.norm_first) {
    auto h = norm(Ref::add(x, sa(x)), 0);
    h = norm(Ref::add(h, ca(h)), 1);
    y = norm(Ref::add(h, ff(h)), 2);
  } else {
    auto h = Ref::add(x, sa(norm(x, 0)));
    h = Ref::add(h, ca(norm(h, 1)));
    y = Ref::add(h, ff(norm(h, 2)));
  }
  std::copy(y.begin(), y.end(), a.output);
}

double activation_reference(Activation act, double x) {
  switch (act) {
    case Activation::kRelu: return std::max(x, 0.0);
    case Activation::kGelu: return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
    case Activation::kGeluTanh: return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    case Activation::kSilu: return x / (1 + std::exp(-x));
  }
  return NAN;
}

void rms_norm_reference(const float* x, int M, int N, const float* gamma, double eps, double weight_offset, float* y) {
  for (int i = 0; i < M; ++i) {
    const float* r = x + static_cast<size_t>(i) * N;
    double ms = 0;
    for (int k = 0; k < N; ++k) ms += static_cast<double>(r[k]) * r[k];
    const double inv = 1 / std::sqrt(ms / N + eps);
    for (int k = 0; k < N; ++k) y[static_cast<size_t>(i) * N + k] = static_cast<float>(r[k] * inv * (gamma ? weight_offset + gamma[k] : 1.0));
  }
}

void feed_forward_reference(const FeedForwardConfig& c, const FeedForwardWeights& w, int M, const float* x, float* y) {
  const int E = c.d_model, F = c.dim_feedforward;
  auto dense = [&](const float* in, int K, const float* W, const float* b, int n) {
    double s = c.bias ? b[n] : 0.0;
    for (int k = 0; k < K; ++k) s += static_cast<double>(in[k]) * W[static_cast<size_t>(n) * K + k];
    return s;
  };
  std::vector<double> hid(F);
  for (int i = 0; i < M; ++i) {
    const float* xi = x + static_cast<size_t>(i) * E;
    for (int n = 0; n < F; ++n) {
      const double up = dense(xi, E, w.up_weight, w.up_bias, n);
      hid[n] = c.gated ? activation_reference(c.activation, dense(xi, E, w.gate_weight, w.gate_bias, n)) * up
                       : activation_reference(c.activation, up);
    }
    for (int n = 0; n < E; ++n) {
      double s = c.bias ? w.down_bias[n] : 0.0;
      for (int k = 0; k < F; ++k) s += hid[k] * w.down_weight[static_cast<size_t>(n) * F + k];
      y[static_cast<size_t>(i) * E + n] = static_cast<float>(s);
    }
  }
}

}  // namespace mha
