// Float64 references of the attention, the MultiHeadAttention layer and the
// Transformer blocks (tests and benchmarks only; not part of the wasm builds).
// They compute in double, with no blocking, no online softmax and no workspace:
// PyTorch's math done literally, which the optimized code is held against.
#pragma once
#include <functional>
#include <vector>

#include "attention.h"
#include "mha.h"
#include "transformer.h"

namespace mha {

// Scalar float64 reference of Attention: same arguments, no workspace.
void attention_reference(const AttentionArgs& a);

// The reference's softmax of one query row i of (b, h) with every mask added:
// p[j] = attention probability of key j, PyTorch's math done literally (NaN where
// it gives NaN). Returns false, with p all 0, when the row attends to nothing (no
// mask leaves it a key, or every score is -inf): its output is then 0, not p @ V.
// dot(j) is q_i . k_j in double. When weights is non-null the row is added to
// it ([B,H,Lq,Lk], or 1/H of it to [B,Lq,Lk]).
bool reference_softmax_row(const MaskArgs& m, int H, int Lq, int Lk, int b, int h, int i, double scale,
                           const std::function<double(int)>& dot, std::vector<double>& p, float* weights,
                           bool average);

// float64 reference of the whole layer, weights as MhaWeights.
void mha_reference(const MhaConfig& cfg, const MhaWeights& w, const MhaForwardArgs& args);

// Float64 references of the blocks.
void encoder_reference(const EncoderConfig& cfg, const EncoderWeights& w, const EncoderForwardArgs& a);
void decoder_reference(const DecoderConfig& cfg, const DecoderWeights& w, const DecoderForwardArgs& a);

// float64 activation (relu, exact gelu, tanh gelu, silu) of one value.
double activation_reference(Activation act, double x);
// RMSNorm of M rows of width N in float64: x / sqrt(mean(x^2) + eps) * (weight_offset + gamma);
// gamma null: no scale.
void rms_norm_reference(const float* x, int M, int N, const float* gamma, double eps, double weight_offset, float* y);
// The feed-forward block (FeedForward) in float64 on M rows: plain
// down(act(up(x))), or gated down(act(gate(x)) * up(x)); biases when cfg.bias.
void feed_forward_reference(const FeedForwardConfig& cfg, const FeedForwardWeights& w, int M, const float* x, float* y);

}  // namespace mha
