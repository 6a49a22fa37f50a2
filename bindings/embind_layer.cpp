// Embind glue for the MultiHeadAttention layer. The JS wrapper validates every
// argument and names it in its errors; this side re-checks what would be unsafe
// and reports failures as status codes (abi.h's Status). Each call takes one
// record (abi.h) written into wasm memory by the JS side.
#include <emscripten/bind.h>

#include <cstdint>

#include "cache.h"
#include "mha.h"
#include "runtime.h"

namespace mha_bind {
namespace {

mha::MhaConfig make_config(const mha::abi::LayerConfig& r) {
  mha::MhaConfig c;
  c.embed_dim = r.embed_dim, c.kdim = r.kdim, c.vdim = r.vdim;
  MHA_ATTENTION_OPTIONS(c, r, );
  c.weight_type = static_cast<mha::WeightType>(r.weight_type);  // valid() refuses other values
  return c;
}

// An invalid config (the JS wrapper never sends one) becomes a 1x1 layer whose
// set_weights/forward refuse to run, rather than undefined behaviour.
mha::MhaConfig checked(const mha::MhaConfig& c) {
  return mha::MultiHeadAttention::valid(c) ? c : mha::MhaConfig{1, 1, 1, 1, false};
}

class Layer {
 public:
  // config: a LayerConfig record.
  explicit Layer(uint32_t config)
      : valid_(mha::MultiHeadAttention::valid(make_config(record<mha::abi::LayerConfig>(config)))),
        impl_(checked(make_config(record<mha::abi::LayerConfig>(config)))) {}

  // weights: an MhaWeights record.
  int setWeights(uint32_t weights) {
    if (!valid_) return static_cast<int>(mha::Status::kInvalidArgument);
    const mha::MhaWeights w = MHA_WEIGHTS_OF(record<mha::abi::MhaWeights>(weights), );
    return static_cast<int>(impl_.set_weights(w));
  }

  // args: an MhaForward record. cache: null, or self-attention whose new keys and
  // values are appended to it (lk = the cached length after the append).
  int forward(uint32_t args, Cache* cache) {
    if (!valid_) return static_cast<int>(mha::Status::kInvalidArgument);
    if (const mha::Status s = ready(cache); s != mha::Status::kOk) return static_cast<int>(s);
    mha::KVCache* kv = cache ? cache->self() : nullptr;
    const mha::abi::MhaForward& r = record<mha::abi::MhaForward>(args);
    mha::MhaForwardArgs a;
    a.B = r.batch, a.Lq = r.lq, a.Lk = r.lk;
    a.query = ptr<const float>(r.query);
    a.key = ptr<const float>(r.key);
    a.value = ptr<const float>(r.value);
    MHA_SET_MASK(a.mask, r, , impl_.config().num_heads, r.lq, r.lk);
    a.output = ptr<float>(r.output);
    a.weights = ptr<float>(r.weights);
    a.average_weights = r.average_weights != 0;
    a.position_ids = ptr<const int32_t>(r.position_ids);
    a.positions_shared = r.positions_shared != 0;
    mha::MhaTrace trace{r.trace_b, r.trace_h, r.trace_i, ptr<float>(r.trace)};
    if (r.trace) a.trace = &trace;
    if (kv) return static_cast<int>(impl_.forward_cached(a, *kv, mha::CacheMode::kAppend, pool(), workspace()));
    return static_cast<int>(impl_.forward(a, pool(), workspace()));
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
      .constructor<uint32_t>()
      .function("setWeights", &mha_bind::Layer::setWeights)
      .function("forward", &mha_bind::Layer::forward, emscripten::allow_raw_pointers())
      .function("lastRequestBytes", &mha_bind::Layer::lastRequestBytes)
      .function("memoryBytes", &mha_bind::Layer::memoryBytes);
}
