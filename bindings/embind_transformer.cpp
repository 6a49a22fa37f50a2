// Embind glue for the Transformer blocks. Weights arrive as a table of heap
// offsets (one uint32 per state_dict entry, 0 = absent) so the signatures stay
// short; the JS wrapper validates names and shapes first.
#include <emscripten/bind.h>

#include <cstdint>

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

class Encoder {
 public:
  Encoder(int E, int H, int F, int act, double eps, bool norm_first, bool bias)
      : valid_(mha::TransformerEncoderLayer::valid(make_config(E, H, F, act, eps, norm_first, bias))),
        nhead_(H),
        impl_(checked(make_config(E, H, F, act, eps, norm_first, bias))) {}

  // table: self_attn (in_w, in_b, out_w, out_b), linear1 (w, b), linear2 (w, b), norm1 (w, b), norm2 (w, b).
  int setWeights(double table) {
    if (!valid_) return static_cast<int>(mha::Status::kInvalidArgument);
    mha::EncoderWeights w;
    w.self_attn = attn_weights(table, 0);
    w.linear1_weight = entry(table, 4), w.linear1_bias = entry(table, 5);
    w.linear2_weight = entry(table, 6), w.linear2_bias = entry(table, 7);
    w.norm1_weight = entry(table, 8), w.norm1_bias = entry(table, 9);
    w.norm2_weight = entry(table, 10), w.norm2_bias = entry(table, 11);
    return static_cast<int>(impl_.set_weights(w));
  }

  int forward(int B, int L, double src, int maskKind, double mask, bool maskBroadcast, double keyPadding, bool causal,
              double output) {
    if (!valid_) return static_cast<int>(mha::Status::kInvalidArgument);
    mha::EncoderForwardArgs a;
    a.B = B, a.L = L, a.src = ptr<const float>(src), a.output = ptr<float>(output);
    set_mask(a.mask, maskKind, mask, maskBroadcast, nhead_, L, L);
    a.mask.key_padding = ptr<const uint8_t>(keyPadding);
    a.mask.causal = causal;
    return static_cast<int>(impl_.forward(a, pool()));
  }

  double lastRequestBytes() const { return static_cast<double>(impl_.last_request_bytes()); }
  double memoryBytes() const { return static_cast<double>(impl_.memory_bytes()); }

 private:
  bool valid_;
  int nhead_;
  mha::TransformerEncoderLayer impl_;
  LiveCount live_;
};

}  // namespace
}  // namespace mha_bind

EMSCRIPTEN_BINDINGS(mha_transformer) {
  emscripten::class_<mha_bind::Encoder>("Encoder")
      .constructor<int, int, int, int, double, bool, bool>()
      .function("setWeights", &mha_bind::Encoder::setWeights)
      .function("forward", &mha_bind::Encoder::forward)
      .function("lastRequestBytes", &mha_bind::Encoder::lastRequestBytes)
      .function("memoryBytes", &mha_bind::Encoder::memoryBytes);
}
