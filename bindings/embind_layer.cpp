// Embind glue for the MultiHeadAttention layer. The JS wrapper validates every
// argument and names it in its errors; this side re-checks what would be unsafe
// and reports failures as status codes (see src/status.h).
#include <emscripten/bind.h>

#include <cstdint>

#include "cache.h"
#include "mha.h"
#include "runtime.h"

namespace mha_bind {
namespace {

mha::MhaConfig make_config(int E, int H, int kdim, int vdim, bool bias) {
  mha::MhaConfig c;
  c.embed_dim = E, c.num_heads = H, c.kdim = kdim, c.vdim = vdim, c.bias = bias;
  // An invalid config (the JS wrapper never sends one) becomes a 1x1 layer whose
  // set_weights/forward refuse to run, rather than undefined behaviour.
  if (!mha::MultiHeadAttention::valid(c)) c = mha::MhaConfig{1, 1, 1, 1, false};
  return c;
}

class Layer {
 public:
  Layer(int E, int H, int kdim, int vdim, bool bias)
      : valid_(mha::MultiHeadAttention::valid(mha::MhaConfig{E, H, kdim, vdim, bias})),
        impl_(make_config(E, H, kdim, vdim, bias)) {}

  int setWeights(double inProj, double q, double k, double v, double inBias, double outW, double outB) {
    if (!valid_) return static_cast<int>(mha::Status::kInvalidArgument);
    mha::MhaWeights w;
    w.in_proj_weight = ptr<const float>(inProj);
    w.q_proj_weight = ptr<const float>(q);
    w.k_proj_weight = ptr<const float>(k);
    w.v_proj_weight = ptr<const float>(v);
    w.in_proj_bias = ptr<const float>(inBias);
    w.out_proj_weight = ptr<const float>(outW);
    w.out_proj_bias = ptr<const float>(outB);
    return static_cast<int>(impl_.set_weights(w));
  }

  // maskKind: 0 none, 1 bool, 2 float; maskBroadcast: attn mask is [Lq, Lk].
  // weights: 0 for none. cache: null, or self-attention whose new keys and values
  // are appended to it (Lk = the cached length after the append).
  int forward(int B, int Lq, int Lk, double query, double key, double value, int maskKind, double mask,
              bool maskBroadcast, double keyPadding, bool causal, double output, double weights,
              bool averageWeights, Cache* cache) {
    if (!valid_ || (cache && !cache->self())) return static_cast<int>(mha::Status::kInvalidArgument);
    mha::MhaForwardArgs a;
    a.B = B, a.Lq = Lq, a.Lk = Lk;
    a.query = ptr<const float>(query);
    a.key = ptr<const float>(key);
    a.value = ptr<const float>(value);
    set_mask(a.mask, maskKind, mask, maskBroadcast, impl_.config().num_heads, Lq, Lk);
    a.mask.key_padding = ptr<const uint8_t>(keyPadding);
    a.mask.causal = causal;
    a.output = ptr<float>(output);
    a.weights = ptr<float>(weights);
    a.average_weights = averageWeights;
    if (cache) return static_cast<int>(impl_.forward_cached(a, *cache->self(), mha::CacheMode::kAppend, pool()));
    return static_cast<int>(impl_.forward(a, pool()));
  }

  double lastRequestBytes() const { return static_cast<double>(impl_.last_request_bytes()); }
  double memoryBytes() const { return static_cast<double>(impl_.memory_bytes()); }

 private:
  bool valid_;
  mha::MultiHeadAttention impl_;
  LiveCount live_;
};

}  // namespace
}  // namespace mha_bind

EMSCRIPTEN_BINDINGS(mha_layer) {
  emscripten::class_<mha_bind::Layer>("Layer")
      .constructor<int, int, int, int, bool>()
      .function("setWeights", &mha_bind::Layer::setWeights)
      .function("forward", &mha_bind::Layer::forward, emscripten::allow_raw_pointers())
      .function("lastRequestBytes", &mha_bind::Layer::lastRequestBytes)
      .function("memoryBytes", &mha_bind::Layer::memoryBytes);
}
