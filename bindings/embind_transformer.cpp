// Embind glue for the Transformer blocks, LayerNorm, RMSNorm, FeedForward and the KV cache. Each call
// takes one record (abi.h): the config on construction, a weight table (one heap
// offset per state_dict entry, 0 = absent) for setWeights, the arguments for
// forward. The JS wrapper validates names and shapes first.
#include <emscripten/bind.h>

#include <algorithm>
#include <cstdint>

#include "cache.h"
#include "feed_forward.h"
#include "layer_norm.h"
#include "runtime.h"
#include "transformer.h"

namespace mha_bind {
namespace {

// in_s, out_s: the scales of pre-quantized int8 matrices (0: the matrix is float).
mha::MhaWeights attn_weights(uint32_t in_w, uint32_t in_b, uint32_t out_w, uint32_t out_b, uint32_t in_s, uint32_t out_s) {
  mha::MhaWeights w;
  w.in_proj_weight = ptr<const float>(in_w), w.in_proj_bias = ptr<const float>(in_b);
  w.out_proj_weight = ptr<const float>(out_w), w.out_proj_bias = ptr<const float>(out_b);
  w.in_proj_weight_scale = ptr<const float>(in_s), w.out_proj_weight_scale = ptr<const float>(out_s);
  return w;
}
#define MHA_ATTN_WEIGHTS(r, P)                                                                            \
  attn_weights((r).P##in_proj_weight, (r).P##in_proj_bias, (r).P##out_proj_weight, (r).P##out_proj_bias, \
               (r).P##in_proj_weight_scale, (r).P##out_proj_weight_scale)

mha::EncoderConfig make_config(const mha::abi::BlockConfig& r) {
  mha::EncoderConfig c;
  c.d_model = r.d_model, c.nhead = r.nhead, c.dim_feedforward = r.dim_feedforward;
  c.activation = r.activation == static_cast<int32_t>(mha::Activation::kGelu) ? mha::Activation::kGelu : mha::Activation::kRelu;
  c.layer_norm_eps = r.layer_norm_eps, c.norm_first = r.norm_first != 0, c.bias = r.bias != 0;
  c.weight_type = static_cast<mha::WeightType>(r.weight_type);  // valid() refuses other values
  return c;
}

// The JS wrapper never sends an invalid config; if one came, a 1x1 block refuses to run.
mha::EncoderConfig checked(const mha::EncoderConfig& c) {
  if (mha::TransformerEncoderLayer::valid(c)) return c;
  mha::EncoderConfig one;
  one.d_model = one.nhead = one.dim_feedforward = 1;
  return one;
}

// What the encoder and decoder wrappers share: the config and its validity.
template <class Impl>
class Block {
 public:
  // config: a BlockConfig record.
  explicit Block(uint32_t config)
      : valid_(mha::TransformerEncoderLayer::valid(make_config(record<mha::abi::BlockConfig>(config)))),
        nhead_(record<mha::abi::BlockConfig>(config).nhead),
        impl_(checked(make_config(record<mha::abi::BlockConfig>(config)))) {}
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
  // weights: an EncoderWeights record.
  int setWeights(uint32_t weights) {
    if (!valid_) return status(mha::Status::kInvalidArgument);
    const mha::abi::EncoderWeights& r = record<mha::abi::EncoderWeights>(weights);
    mha::EncoderWeights w;
    w.self_attn = MHA_ATTN_WEIGHTS(r, self_attn_);
    w.linear1_weight = ptr<const float>(r.linear1_weight), w.linear1_bias = ptr<const float>(r.linear1_bias);
    w.linear2_weight = ptr<const float>(r.linear2_weight), w.linear2_bias = ptr<const float>(r.linear2_bias);
    w.linear1_weight_scale = ptr<const float>(r.linear1_weight_scale);
    w.linear2_weight_scale = ptr<const float>(r.linear2_weight_scale);
    w.norm1_weight = ptr<const float>(r.norm1_weight), w.norm1_bias = ptr<const float>(r.norm1_bias);
    w.norm2_weight = ptr<const float>(r.norm2_weight), w.norm2_bias = ptr<const float>(r.norm2_bias);
    return status(impl_.set_weights(w));
  }

  // args: an EncoderForward record. cache: null, or the new positions' keys and
  // values are appended to it and masks are [L, cached length + L].
  int forward(uint32_t args, Cache* cache) {
    if (!valid_) return status(mha::Status::kInvalidArgument);
    if (const mha::Status s = ready(cache); s != mha::Status::kOk) return status(s);
    const mha::abi::EncoderForward& r = record<mha::abi::EncoderForward>(args);
    mha::EncoderForwardArgs a;
    a.B = r.batch, a.L = r.length, a.src = ptr<const float>(r.src), a.output = ptr<float>(r.output);
    a.weights = ptr<float>(r.weights);
    a.cache = cache ? cache->self() : nullptr;
    MHA_SET_MASK(a.mask, r, , nhead_, r.length, r.length + (cache ? cache->length() : 0));
    return status(impl_.forward(a, pool(), workspace()));
  }
};

class Decoder : public Block<mha::TransformerDecoderLayer> {
 public:
  using Block::Block;
  // weights: a DecoderWeights record.
  int setWeights(uint32_t weights) {
    if (!valid_) return status(mha::Status::kInvalidArgument);
    const mha::abi::DecoderWeights& r = record<mha::abi::DecoderWeights>(weights);
    mha::DecoderWeights w;
    w.self_attn = MHA_ATTN_WEIGHTS(r, self_attn_), w.cross_attn = MHA_ATTN_WEIGHTS(r, multihead_attn_);
    w.linear1_weight = ptr<const float>(r.linear1_weight), w.linear1_bias = ptr<const float>(r.linear1_bias);
    w.linear2_weight = ptr<const float>(r.linear2_weight), w.linear2_bias = ptr<const float>(r.linear2_bias);
    w.linear1_weight_scale = ptr<const float>(r.linear1_weight_scale);
    w.linear2_weight_scale = ptr<const float>(r.linear2_weight_scale);
    const uint32_t nw[3] = {r.norm1_weight, r.norm2_weight, r.norm3_weight}, nb[3] = {r.norm1_bias, r.norm2_bias, r.norm3_bias};
    for (int i = 0; i < 3; ++i) w.norm_weight[i] = ptr<const float>(nw[i]), w.norm_bias[i] = ptr<const float>(nb[i]);
    return status(impl_.set_weights(w));
  }

  // args: a DecoderForward record; cache as the encoder's (it also keeps the projected memory).
  int forward(uint32_t args, Cache* cache) {
    if (!valid_) return status(mha::Status::kInvalidArgument);
    if (const mha::Status s = ready(cache); s != mha::Status::kOk) return status(s);
    const mha::abi::DecoderForward& r = record<mha::abi::DecoderForward>(args);
    mha::DecoderForwardArgs a;
    a.B = r.batch, a.T = r.tgt_length, a.S = r.memory_length;
    a.tgt = ptr<const float>(r.tgt), a.memory = ptr<const float>(r.memory);
    a.output = ptr<float>(r.output), a.self_weights = ptr<float>(r.self_weights), a.cross_weights = ptr<float>(r.cross_weights);
    if (cache) a.self_cache = cache->self(), a.cross_cache = cache->cross();
    MHA_SET_MASK(a.tgt_mask, r, tgt_, nhead_, r.tgt_length, r.tgt_length + (cache ? cache->length() : 0));
    MHA_SET_MASK(a.memory_mask, r, memory_, nhead_, r.tgt_length, r.memory_length);
    return status(impl_.forward(a, pool(), workspace()));
  }
};

// torch.nn.LayerNorm and torch.nn.RMSNorm over the last `width` elements of each
// row (mha::LayerNorm, mha::RMSNorm). Until setWeights, PyTorch's initial weight
// (ones) and bias (zeros), set on first use.
mha::LayerNorm make_norm(const mha::abi::NormConfig& c, mha::LayerNorm*) { return mha::LayerNorm(std::max(1, c.width), c.eps); }
mha::RMSNorm make_norm(const mha::abi::RmsNormConfig& c, mha::RMSNorm*) {
  return mha::RMSNorm(std::max(1, c.width), c.eps, c.weight_offset);
}

template <class Impl, class Config>
class Norm {
 public:
  // config: a NormConfig (LayerNorm) or RmsNormConfig (RMSNorm) record.
  explicit Norm(uint32_t config) : impl_(make_norm(record<Config>(config), static_cast<Impl*>(nullptr))) {}
  // weights: a NormWeights record; weight 0: ones (no elementwise affine); bias 0: zeros.
  int setWeights(uint32_t weights) {
    const mha::abi::NormWeights& r = record<mha::abi::NormWeights>(weights);
    return static_cast<int>(impl_.set_weights(ptr<const float>(r.weight), ptr<const float>(r.bias)));
  }
  // args: a NormForward record.
  int forward(uint32_t args) {
    if (!impl_.has_weights()) {
      const mha::Status s = impl_.set_weights(nullptr, nullptr);
      if (s != mha::Status::kOk) return static_cast<int>(s);
    }
    const mha::abi::NormForward& r = record<mha::abi::NormForward>(args);
    if (r.rows <= 0 || !r.x || !r.y) return static_cast<int>(mha::Status::kInvalidArgument);
    impl_.forward(pool(), r.rows, ptr<const float>(r.x), ptr<float>(r.y));
    return 0;
  }
  // Bytes setWeights or the first forward needs: the weights.
  double requestBytes() const { return static_cast<double>(impl_.weight_floats() * sizeof(float)); }
  double memoryBytes() const { return static_cast<double>(impl_.memory_bytes()); }

 private:
  Impl impl_;
  LiveCount live_;
};
using LayerNorm = Norm<mha::LayerNorm, mha::abi::NormConfig>;
using RMSNorm = Norm<mha::RMSNorm, mha::abi::RmsNormConfig>;

// The feed-forward block (mha::FeedForward), plain or gated.
class FeedForward {
 public:
  // config: a FeedForwardConfig record. The JS wrapper never sends an invalid one;
  // if one came, a 1x1 block refuses to run.
  explicit FeedForward(uint32_t config) : valid_(mha::FeedForward::valid(make(config))), impl_(checked(make(config))) {}
  // weights: a FeedForwardWeights record.
  int setWeights(uint32_t weights) {
    if (!valid_) return static_cast<int>(mha::Status::kInvalidArgument);
    const mha::abi::FeedForwardWeights& r = record<mha::abi::FeedForwardWeights>(weights);
    mha::FeedForwardWeights w;
    w.gate_weight = ptr<const float>(r.gate_weight), w.gate_bias = ptr<const float>(r.gate_bias);
    w.up_weight = ptr<const float>(r.up_weight), w.up_bias = ptr<const float>(r.up_bias);
    w.down_weight = ptr<const float>(r.down_weight), w.down_bias = ptr<const float>(r.down_bias);
    // Pre-quantized int8 matrices: with a scale, the matrix pointer holds int8 values.
    w.gate_weight_scale = ptr<const float>(r.gate_weight_scale), w.up_weight_scale = ptr<const float>(r.up_weight_scale);
    w.down_weight_scale = ptr<const float>(r.down_weight_scale);
    return static_cast<int>(impl_.set_weights(w));
  }
  // args: a FeedForwardForward record.
  int forward(uint32_t args) {
    if (!valid_) return static_cast<int>(mha::Status::kInvalidArgument);
    const mha::abi::FeedForwardForward& r = record<mha::abi::FeedForwardForward>(args);
    return static_cast<int>(impl_.forward(pool(), workspace(), r.rows, ptr<const float>(r.x), ptr<float>(r.y)));
  }
  // Bytes the last setWeights (its packed weights) or forward (its workspace) that ran out of memory needed.
  double requestBytes() const { return static_cast<double>(impl_.last_request_bytes()); }
  double memoryBytes() const { return static_cast<double>(impl_.memory_bytes()); }

 private:
  static mha::FeedForwardConfig make(uint32_t config) {
    const mha::abi::FeedForwardConfig& r = record<mha::abi::FeedForwardConfig>(config);
    mha::FeedForwardConfig c;
    c.d_model = r.d_model, c.dim_feedforward = r.dim_feedforward, c.activation = static_cast<mha::Activation>(r.activation);
    c.gated = r.gated != 0, c.bias = r.bias != 0;
    c.weight_type = static_cast<mha::WeightType>(r.weight_type);  // valid() refuses other values
    return c;
  }
  static mha::FeedForwardConfig checked(const mha::FeedForwardConfig& c) {
    if (mha::FeedForward::valid(c)) return c;
    mha::FeedForwardConfig one;
    one.d_model = one.dim_feedforward = 1;
    return one;
  }
  bool valid_;
  mha::FeedForward impl_;
  LiveCount live_;
};

}  // namespace
}  // namespace mha_bind

EMSCRIPTEN_BINDINGS(mha_transformer) {
  using namespace mha_bind;
  using emscripten::allow_raw_pointers;
  emscripten::class_<Cache>("Cache")
      .constructor<uint32_t>()
      .function("ready", &Cache::readyStatus)
      .function("length", &Cache::length)
      .function("crossLength", &Cache::crossLength)
      .function("reset", &Cache::reset)
      .function("truncate", &Cache::truncate)
      .function("requestBytes", &Cache::requestBytes)
      .function("memoryBytes", &Cache::memoryBytes);
  // Block's members are registered through lambdas taking the derived class: a pointer to a
  // member of the (unregistered) base would leave Embind waiting for Block's type, and the
  // methods would silently never appear.
  emscripten::class_<Encoder>("Encoder")
      .constructor<uint32_t>()
      .function("setWeights", &Encoder::setWeights)
      .function("forward", &Encoder::forward, allow_raw_pointers())
      .function("lastRequestBytes", emscripten::optional_override([](const Encoder& b) { return b.lastRequestBytes(); }))
      .function("memoryBytes", emscripten::optional_override([](const Encoder& b) { return b.memoryBytes(); }));
  emscripten::class_<Decoder>("Decoder")
      .constructor<uint32_t>()
      .function("setWeights", &Decoder::setWeights)
      .function("forward", &Decoder::forward, allow_raw_pointers())
      .function("lastRequestBytes", emscripten::optional_override([](const Decoder& b) { return b.lastRequestBytes(); }))
      .function("memoryBytes", emscripten::optional_override([](const Decoder& b) { return b.memoryBytes(); }));
  emscripten::class_<LayerNorm>("LayerNorm")
      .constructor<uint32_t>()
      .function("setWeights", &LayerNorm::setWeights)
      .function("forward", &LayerNorm::forward)
      .function("requestBytes", &LayerNorm::requestBytes)
      .function("memoryBytes", &LayerNorm::memoryBytes);
  emscripten::class_<RMSNorm>("RMSNorm")
      .constructor<uint32_t>()
      .function("setWeights", &RMSNorm::setWeights)
      .function("forward", &RMSNorm::forward)
      .function("requestBytes", &RMSNorm::requestBytes)
      .function("memoryBytes", &RMSNorm::memoryBytes);
  emscripten::class_<FeedForward>("FeedForward")
      .constructor<uint32_t>()
      .function("setWeights", &FeedForward::setWeights)
      .function("forward", &FeedForward::forward)
      .function("requestBytes", &FeedForward::requestBytes)
      .function("memoryBytes", &FeedForward::memoryBytes);
}
