#include "feed_forward.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "kernels.h"

namespace mha {

namespace {
Epilogue::Act act_of(Activation a) {
  switch (a) {
    case Activation::kGelu: return Epilogue::Act::kGelu;
    case Activation::kGeluTanh: return Epilogue::Act::kGeluTanh;
    case Activation::kSilu: return Epilogue::Act::kSilu;
    case Activation::kRelu: break;
  }
  return Epilogue::Act::kRelu;
}

// Element-wise floating-point operations of one activation (work() estimates).
double act_cost(Activation a) {
  switch (a) {
    case Activation::kGelu: return 20;
    case Activation::kGeluTanh: return 16;
    case Activation::kSilu: return 12;
    case Activation::kRelu: break;
  }
  return 1;
}
}  // namespace

bool FeedForward::valid(const FeedForwardConfig& c) {
  const int a = static_cast<int>(c.activation);
  return c.d_model > 0 && c.dim_feedforward > 0 && a >= static_cast<int>(Activation::kRelu) &&
         a <= static_cast<int>(Activation::kSilu) && valid_weight_type(c.weight_type);
}

FeedForward::FeedForward(const FeedForwardConfig& cfg)
    : cfg_(cfg), up_(cfg.d_model, cfg.dim_feedforward, cfg.weight_type),
      down_(cfg.dim_feedforward, cfg.d_model, cfg.weight_type) {}

Status FeedForward::set_weights(const FeedForwardWeights& w) {
  has_weights_ = false;
  const bool bias = cfg_.bias, gated = cfg_.gated;
  const WeightType t = cfg_.weight_type;
  if (!w.up_weight || !w.down_weight || (gated && !w.gate_weight)) return Status::kInvalidArgument;
  if (bias && (!w.up_bias || !w.down_bias || (gated && !w.gate_bias))) return Status::kInvalidArgument;
  const int E = cfg_.d_model, F = cfg_.dim_feedforward, G = kernels::kNR;
  if (gated) {  // checked here: the fused matrix is packed below (the Linears check their own)
    for (const auto& [m, scale] : {std::pair{w.gate_weight, w.gate_weight_scale}, std::pair{w.up_weight, w.up_weight_scale}}) {
      const Status ok = scale ? (t == WeightType::kInt8 ? PackedMatrix::check(t, scale, F) : Status::kInvalidArgument)
                              : PackedMatrix::check(t, m, static_cast<size_t>(F) * E);
      if (ok != Status::kOk) return ok;
    }
  }
  last_request_bytes_ = weight_bytes();
  Status s = down_.set_weights(w.down_weight, bias ? w.down_bias : nullptr, w.down_weight_scale);
  if (s != Status::kOk) return s;
  if (!gated) {
    s = up_.set_weights(w.up_weight, bias ? w.up_bias : nullptr, w.up_weight_scale);
  } else {
    // Panel 2p: gate_proj's rows 8p..8p+7 (as W^T columns), panel 2p + 1: up_proj's.
    const int groups = padded_f() / G;
    if (gate_up_.reserve(E, 2 * groups * G, t) != Status::kOk ||
        (bias && !gate_up_bias_.reserve(2 * static_cast<uint64_t>(groups) * G)))
      return Status::kOutOfMemory;
    // Rows [r0, r0 + n) of a matrix (float, or int8 with its scales) into columns n0..
    auto put = [&](int n0, const float* m, const float* scale, int r0, int n) {
      const size_t at = static_cast<size_t>(r0) * E;
      return scale ? gate_up_.fill_int8(n0, n, reinterpret_cast<const int8_t*>(m) + at, scale + r0)
                   : gate_up_.fill(n0, n, m + at);
    };
    for (int p = 0; p < groups && s == Status::kOk; ++p) {
      const int nr = std::min(G, F - p * G);
      s = put(2 * p * G, w.gate_weight, w.gate_weight_scale, p * G, nr);
      if (s == Status::kOk) s = put((2 * p + 1) * G, w.up_weight, w.up_weight_scale, p * G, nr);
      if (bias) {
        float* b = gate_up_bias_.data() + 2 * p * G;
        std::fill(b, b + 2 * G, 0.0f);
        std::memcpy(b, w.gate_bias + p * G, sizeof(float) * nr);
        std::memcpy(b + G, w.up_bias + p * G, sizeof(float) * nr);
      }
    }
  }
  has_weights_ = s == Status::kOk;
  if (has_weights_) last_request_bytes_ = 0;
  return s;
}

uint64_t FeedForward::weight_bytes() const {
  const int E = cfg_.d_model, F = cfg_.dim_feedforward, Fp = padded_f();
  const WeightType t = cfg_.weight_type;
  const uint64_t down = PackedMatrix::bytes(F, E, t) + sizeof(float) * E;
  return down + (cfg_.gated ? PackedMatrix::bytes(E, 2 * Fp, t) + sizeof(float) * 2 * Fp
                            : PackedMatrix::bytes(E, F, t) + sizeof(float) * F);
}

uint64_t FeedForward::workspace_floats(int M) const {
  const uint64_t m = static_cast<uint64_t>(M);
  return m * cfg_.dim_feedforward + (cfg_.gated ? m * 2 * padded_f() : 0);
}

double FeedForward::work(int M) const {
  const double E = cfg_.d_model, F = cfg_.dim_feedforward;
  return (cfg_.gated ? 6.0 : 4.0) * M * E * F + M * F * (act_cost(cfg_.activation) + (cfg_.gated ? 1 : 0));
}

Gemm FeedForward::gate_up_gemm(int M, const float* x, float* gu, float* hidden) const {
  const int N = 2 * padded_f();
  Epilogue e;
  e.act = act_of(cfg_.activation);
  e.glu = hidden, e.ldg = cfg_.dim_feedforward, e.glu_width = cfg_.dim_feedforward;
  return gate_up_.gemm(M, x, cfg_.d_model, gu, N, 0, N, cfg_.bias ? gate_up_bias_.data() : nullptr, e);
}

void FeedForward::phases(ThreadPool::Team& team, int M, const float* x, float* y, float* scratch,
                         const float* residual) const {
  const int E = cfg_.d_model, F = cfg_.dim_feedforward;
  float* hidden = scratch;  // [M x F]
  if (cfg_.gated) {
    gemm_phase(team, gate_up_gemm(M, x, scratch + static_cast<size_t>(M) * F, hidden));
  } else {
    Epilogue act;
    act.act = act_of(cfg_.activation);
    gemm_phase(team, up_.gemm(M, x, E, hidden, F, act));
  }
  Epilogue res;
  res.residual = residual, res.ldr = E;
  gemm_phase(team, down_.gemm(M, hidden, F, y, E, res));
}

uint64_t FeedForward::workspace_bytes(int M) const {
  Arena count;
  count.floats(workspace_floats(M));
  return count.bytes();
}

Status FeedForward::forward(ThreadPool& pool, Workspace& ws, int M, const float* x, float* y) {
  if (!has_weights_) return Status::kNoWeights;
  if (M <= 0 || !x || !y) return Status::kInvalidArgument;
  const uint64_t need = workspace_bytes(M);
  last_request_bytes_ = need;
  if (ws.reserve(need) != Status::kOk) return Status::kOutOfMemory;
  last_request_bytes_ = 0;
  Arena arena(ws.data(), need);
  float* scratch = arena.floats(workspace_floats(M));
  pool.job(pool.threads_for(work(M)), [&](ThreadPool::Team& team) { phases(team, M, x, y, scratch, nullptr); });
  ws.after_call(need);
  return Status::kOk;
}

}  // namespace mha
