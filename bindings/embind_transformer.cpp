// Embind glue for the Transformer blocks, LayerNorm and the KV cache. Weights
// arrive as a table of heap offsets (one uint32 per state_dict entry, 0 =
// absent) so the signatures stay short; the JS wrapper validates names and
// shapes first.
#include <emscripten/bind.h>

#include <algorithm>
#include <cstdint>

#include "buffer.h"

#include "cache.h"
#include "runtime.h"
#include "transformer.h"

namespace mha_bind {
namespace {

const float* entry(double table, int i) { return ptr<const float>(ptr<const uint32_t>(table)[i]); }

mha::MhaWeights attn_weights(double table, int first) {
  mha::MhaWeights w;
  w.in_proj_weight = entry(table, first), w.in_proj_bias = entry(table, first + 1);
  w.out_proj_weight = entry(table, first + 2), w.out_proj_bias = entry(table, first + 3);
  return w;
}

mha::EncoderConfig make_config(int E, int H, int F, int act, double eps, bool norm_first, bool bias) {
  mha::EncoderConfig c;
  c.d_model = E, c.nhead = H, c.dim_feedforward = F, c.activation = act == 1 ? mha::Activation::kGelu : mha::Activation::kRelu;
  c.layer_norm_eps = static_cast<float>(eps), c.norm_first = norm_first, c.bias = bias;
  return c;
}

// The JS wrapper never sends an invalid config; if one came, a 1x1 block refuses to run.
mha::EncoderConfig checked(const mha::EncoderConfig& c) {
  return mha::TransformerEncoderLayer::valid(c) ? c : make_config(1, 1, 1, 0, 1e-5, false, false);
}

// What the encoder and decoder wrappers share: the config and its validity.
template <class Impl>
class Block {
 public:
  Block(int E, int H, int F, int act, double eps, bool norm_first, bool bias)
      : valid_(mha::TransformerEncoderLayer::valid(make_config(E, H, F, act, eps, norm_first, bias))),
        nhead_(H),
        impl_(checked(make_config(E, H, F, act, eps, norm_first, bias))) {}
  double lastRequestBytes() const { return static_cast<double>(impl_.last_request_bytes()); }
  double memoryBytes() const { return static_cast<double>(impl_.memory_bytes()); }

 protected:
  static int status(mha::Status s) { return static_cast<int>(s); }
  bool valid_;
  int nhead_;
  Impl impl_;
  LiveCount live_;
};

class Encoder : public Block<mha::TransformerEncoderLayer> {
 public:
  using Block::Block;
  // table: self_attn (in_w, in_b, out_w, out_b), linear1 (w, b), linear2 (w, b), norm1 (w, b), norm2 (w, b).
  int setWeights(double table) {
    if (!valid_) return status(mha::Status::kInvalidArgument);
    mha::EncoderWeights w;
    w.self_attn = attn_weights(table, 0);
    w.linear1_weight = entry(table, 4), w.linear1_bias = entry(table, 5);
    w.linear2_weight = entry(table, 6), w.linear2_bias = entry(table, 7);
    w.norm1_weight = entry(table, 8), w.norm1_bias = entry(table, 9);
    w.norm2_weight = entry(table, 10), w.norm2_bias = entry(table, 11);
    return status(impl_.set_weights(w));
  }

  // cache: null, or the new positions' keys and values are appended to it and
  // masks are [L, cached length + L]. weights: 0 or [B, H, L, Lk].
  int forward(int B, int L, double src, int maskKind, double mask, bool maskBroadcast, double keyPadding, bool causal,
              double output, Cache* cache, double weights) {
    if (!valid_ || (cache && !cache->self())) return status(mha::Status::kInvalidArgument);
    mha::EncoderForwardArgs a;
    a.B = B, a.L = L, a.src = ptr<const float>(src), a.output = ptr<float>(output), a.weights = ptr<float>(weights);
    a.cache = cache ? cache->self() : nullptr;
    set_mask(a.mask, maskKind, mask, maskBroadcast, nhead_, L, L + (cache ? cache->length() : 0));
    a.mask.key_padding = ptr<const uint8_t>(keyPadding);
    a.mask.causal = causal;
    return status(impl_.forward(a, pool()));
  }
};

class Decoder : public Block<mha::TransformerDecoderLayer> {
 public:
  using Block::Block;
  // table: self_attn (4), multihead_attn (4), linear1 (w, b), linear2 (w, b), norm1..3 (w, b).
  int setWeights(double table) {
    if (!valid_) return status(mha::Status::kInvalidArgument);
    mha::DecoderWeights w;
    w.self_attn = attn_weights(table, 0), w.cross_attn = attn_weights(table, 4);
    w.linear1_weight = entry(table, 8), w.linear1_bias = entry(table, 9);
    w.linear2_weight = entry(table, 10), w.linear2_bias = entry(table, 11);
    for (int i = 0; i < 3; ++i) w.norm_weight[i] = entry(table, 12 + 2 * i), w.norm_bias[i] = entry(table, 13 + 2 * i);
    return status(impl_.set_weights(w));
  }

  // Masks: kind, data, broadcast, key padding, causal for the target, then for the memory.
  int forward(int B, int T, int S, double tgt, double memory, int tKind, double tMask, bool tBroadcast, double tPad,
              bool tCausal, int mKind, double mMask, bool mBroadcast, double mPad, bool mCausal, double output,
              Cache* cache, double selfWeights, double crossWeights) {
    if (!valid_ || (cache && !cache->self())) return status(mha::Status::kInvalidArgument);
    mha::DecoderForwardArgs a;
    a.B = B, a.T = T, a.S = S, a.tgt = ptr<const float>(tgt), a.memory = ptr<const float>(memory);
    a.output = ptr<float>(output), a.self_weights = ptr<float>(selfWeights), a.cross_weights = ptr<float>(crossWeights);
    if (cache) a.self_cache = cache->self(), a.cross_cache = cache->cross();
    set_mask(a.tgt_mask, tKind, tMask, tBroadcast, nhead_, T, T + (cache ? cache->length() : 0));
    a.tgt_mask.key_padding = ptr<const uint8_t>(tPad), a.tgt_mask.causal = tCausal;
    set_mask(a.memory_mask, mKind, mMask, mBroadcast, nhead_, T, S);
    a.memory_mask.key_padding = ptr<const uint8_t>(mPad), a.memory_mask.causal = mCausal;
    return status(impl_.forward(a, pool()));
  }
};

// torch.nn.LayerNorm over the last `width` elements of each row.
class Norm {
 public:
  Norm(int width, double eps) : width_(width > 0 ? width : 1), eps_(static_cast<float>(eps)), norms_(1, width_) {}
  // gamma 0: no elementwise affine (ones); beta 0: no bias. Nothing here may
  // throw: the ones come from a FloatBuffer, whose failure is kOutOfMemory.
  int setWeights(double gamma, double beta) {
    mha::FloatBuffer ones;
    const float* g = ptr<const float>(gamma);
    if (!g) {
      if (!ones.reserve(static_cast<uint64_t>(width_))) return static_cast<int>(mha::Status::kOutOfMemory);
      std::fill(ones.data(), ones.data() + width_, 1.0f);
      g = ones.data();
    }
    const float* b = ptr<const float>(beta);
    const mha::Status s = norms_.set(&g, &b);
    has_weights_ = s == mha::Status::kOk;
    return static_cast<int>(s);
  }
  int forward(int rows, double x, double y) {
    if (!has_weights_) return static_cast<int>(mha::Status::kNoWeights);
    if (rows <= 0 || !x || !y) return static_cast<int>(mha::Status::kInvalidArgument);
    norms_.apply(pool(), 0, rows, ptr<const float>(x), eps_, ptr<float>(y));
    return 0;
  }
  double memoryBytes() const { return static_cast<double>(norms_.memory_bytes()); }

 private:
  int width_;
  float eps_;
  mha::Norms norms_;
  bool has_weights_ = false;
  LiveCount live_;
};

}  // namespace
}  // namespace mha_bind

EMSCRIPTEN_BINDINGS(mha_transformer) {
  using namespace mha_bind;
  using emscripten::allow_raw_pointers;
  emscripten::class_<Cache>("Cache")
      .constructor<int, int, int>()
      .function("status", &Cache::status)
      .function("length", &Cache::length)
      .function("crossLength", &Cache::crossLength)
      .function("reset", &Cache::reset)
      .function("memoryBytes", &Cache::memoryBytes);
  emscripten::class_<Encoder>("Encoder")
      .constructor<int, int, int, int, double, bool, bool>()
      .function("setWeights", &Encoder::setWeights)
      .function("forward", &Encoder::forward, allow_raw_pointers())
      .function("lastRequestBytes", &Encoder::lastRequestBytes)
      .function("memoryBytes", &Encoder::memoryBytes);
  emscripten::class_<Decoder>("Decoder")
      .constructor<int, int, int, int, double, bool, bool>()
      .function("setWeights", &Decoder::setWeights)
      .function("forward", &Decoder::forward, allow_raw_pointers())
      .function("lastRequestBytes", &Decoder::lastRequestBytes)
      .function("memoryBytes", &Decoder::memoryBytes);
  emscripten::class_<Norm>("Norm")
      .constructor<int, double>()
      .function("setWeights", &Norm::setWeights)
      .function("forward", &Norm::forward)
      .function("memoryBytes", &Norm::memoryBytes);
}
