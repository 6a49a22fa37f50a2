// The position-wise feed-forward block of a Transformer, plain or gated:
//   plain: y = linear2(act(linear1(x)))              (torch.nn.TransformerEncoderLayer's)
//   gated: y = down_proj(act(gate_proj(x)) * up_proj(x))  (Llama's and Gemma's MLP)
// act is ReLU, GELU (exact erf), GELU (tanh approximation) or SiLU. The gated
// block's gate and up projections are one GEMM over weights packed side by side
// (8-column panels of each in turn), whose epilogue writes act(gate) * up, so the
// hidden layer is computed in one pass. Its standalone forward is one job of the
// thread pool (two GEMM phases) with its scratch carved from the runtime's
// Workspace; the Transformer blocks run the same phases inside their own job.
#pragma once
#include <cstddef>
#include <cstdint>

#include "abi.h"
#include "buffer.h"
#include "linear.h"
#include "status.h"
#include "thread_pool.h"
#include "workspace.h"

namespace mha {

// Feed-forward activations, as the bindings number them (bindings/abi.js).
using Activation = abi::Activation;

struct FeedForwardConfig {
  int d_model = 0, dim_feedforward = 0;  // E, F
  Activation activation = Activation::kRelu;
  bool gated = false;
  bool bias = true;
  // How the matrices are stored (the biases stay float32).
  WeightType weight_type = WeightType::kF32;
};

// PyTorch layout [out, in]. Plain: up = linear1, down = linear2; gated: HF's
// gate_proj, up_proj, down_proj. Biases are required when the config has bias
// (gate's only when gated) and ignored otherwise. In an int8 block a matrix may
// come pre-quantized: with <name>_scale set ([out] floats), <name> points to
// int8 values [out, in], w = q * scale (the compressed-tensors layout).
struct FeedForwardWeights {
  const float* gate_weight = nullptr;  // [F, E], gated only
  const float* gate_bias = nullptr;    // [F]
  const float* up_weight = nullptr;    // [F, E]
  const float* up_bias = nullptr;      // [F]
  const float* down_weight = nullptr;  // [E, F]
  const float* down_bias = nullptr;    // [E]
  const float* gate_weight_scale = nullptr;  // [F]
  const float* up_weight_scale = nullptr;    // [F]
  const float* down_weight_scale = nullptr;  // [E]
};

class FeedForward {
 public:
  explicit FeedForward(const FeedForwardConfig& cfg);
  static bool valid(const FeedForwardConfig& cfg);
  const FeedForwardConfig& config() const { return cfg_; }
  // kInvalidArgument for a missing weight, or one the weight type cannot hold
  // (PackedMatrix::check); kOutOfMemory if they do not fit.
  Status set_weights(const FeedForwardWeights& w);
  bool has_weights() const { return has_weights_; }
  // Workspace floats M rows need: the hidden layer [M x F], and for the gated
  // block the fused gate/up output [M x 2 round_up(F, 8)] behind it.
  uint64_t workspace_floats(int M) const;
  // Floating-point operations of M rows (ThreadPool::threads_for).
  double work(int M) const;
  // y[M x E] = ff(x[M x E]) (+ residual, [M x E]) as two GEMM phases of a job;
  // scratch: workspace_floats(M). The activation (and the gating) is applied to
  // each tile of the first GEMM as it is computed. y may alias x but not residual.
  void phases(ThreadPool::Team& team, int M, const float* x, float* y, float* scratch, const float* residual) const;
  // What forward(M) needs from the workspace.
  uint64_t workspace_bytes(int M) const;
  // y = ff(x), M rows, as one job of the pool; y may alias x. kNoWeights before
  // set_weights, kOutOfMemory (last_request_bytes()) when the workspace cannot grow.
  Status forward(ThreadPool& pool, Workspace& ws, int M, const float* x, float* y);
  // What the last set_weights or forward that failed for lack of memory asked for (0 after a success).
  uint64_t last_request_bytes() const { return last_request_bytes_; }
  // Bytes of weights set_weights allocates (packed as the weight type, with biases).
  uint64_t weight_bytes() const;
  // The weights (the block holds nothing else).
  size_t memory_bytes() const {
    return up_.memory_bytes() + down_.memory_bytes() + gate_up_.memory_bytes() + gate_up_bias_.bytes();
  }

 private:
  int padded_f() const { return static_cast<int>(round_up(cfg_.dim_feedforward, kernels::kNR)); }
  Gemm gate_up_gemm(int M, const float* x, float* gu, float* hidden) const;

  FeedForwardConfig cfg_;
  Linear up_, down_;                     // up_: linear1 (plain only); down_: linear2 / down_proj
  PackedMatrix gate_up_;                 // gated: the fused projection, panels of gate and up in turn
  FloatBuffer gate_up_bias_;
  bool has_weights_ = false;
  uint64_t last_request_bytes_ = 0;
};

}  // namespace mha
