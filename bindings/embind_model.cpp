// Embind glue for a whole model (mha::Model) and its KV caches. The JS side
// (bindings/model.js) maps a Hugging Face config and checkpoint onto the records.
#include <emscripten/bind.h>

#include <cstdint>

#include "model.h"
#include "runtime.h"

namespace mha_bind {
namespace {

mha::ModelConfig make_config(const mha::abi::ModelConfig& r) {
  mha::ModelConfig c;
  c.vocab = r.vocab, c.hidden = r.hidden, c.layers = r.layers, c.max_positions = r.max_positions, c.type_vocab = r.type_vocab;
  c.embed_norm = r.embed_norm != 0, c.rms_norm = r.rms_norm != 0, c.norm_bias = r.norm_bias != 0, c.norm_eps = r.norm_eps;
  c.pre_norm = r.pre_norm != 0, c.final_norm = r.final_norm != 0, c.head = r.head, c.causal = r.causal != 0;
  c.window_from = r.window_from;
  MHA_ATTENTION_OPTIONS(c.attention, r, attn_);
  c.ffn.dim_feedforward = r.dim_feedforward, c.ffn.gated = r.gated != 0, c.ffn.bias = r.ffn_bias != 0;
  c.ffn.activation = static_cast<mha::Activation>(r.activation);
  // The blocks' matrices (valid() refuses other values); embeddings and head stay float32.
  c.attention.weight_type = c.ffn.weight_type = static_cast<mha::WeightType>(r.weight_type);
  return c;
}

// An invalid config (the JS side never sends one) becomes a one-token model that refuses to run.
mha::ModelConfig checked(const mha::ModelConfig& c) {
  if (mha::Model::valid(c)) return c;
  mha::ModelConfig one;
  one.vocab = one.hidden = one.layers = 1;
  one.attention.num_heads = 1;
  one.ffn.dim_feedforward = 1;
  return one;
}

class Model {
 public:
  // config: a ModelConfig record.
  explicit Model(uint32_t config)
      : valid_(mha::Model::valid(make_config(record<mha::abi::ModelConfig>(config)))),
        impl_(checked(make_config(record<mha::abi::ModelConfig>(config)))) {}

  int setEmbeddings(uint32_t rec) {
    if (!valid_) return status(mha::Status::kInvalidArgument);
    const mha::abi::EmbeddingWeights& r = record<mha::abi::EmbeddingWeights>(rec);
    mha::EmbeddingWeights w;
    w.tokens = ptr<const float>(r.tokens), w.positions = ptr<const float>(r.positions), w.types = ptr<const float>(r.types);
    w.norm_weight = ptr<const float>(r.norm_weight), w.norm_bias = ptr<const float>(r.norm_bias);
    return status(impl_.set_embeddings(w));
  }

  int setBlock(int i, uint32_t rec) {
    if (!valid_) return status(mha::Status::kInvalidArgument);
    const mha::abi::BlockWeights& r = record<mha::abi::BlockWeights>(rec);
    mha::BlockWeights w;
    w.norm1_weight = ptr<const float>(r.norm1_weight), w.norm1_bias = ptr<const float>(r.norm1_bias);
    w.norm2_weight = ptr<const float>(r.norm2_weight), w.norm2_bias = ptr<const float>(r.norm2_bias);
    w.attention = MHA_WEIGHTS_OF(r, attn_);
    w.ffn.gate_weight = ptr<const float>(r.gate_weight), w.ffn.gate_bias = ptr<const float>(r.gate_bias);
    w.ffn.up_weight = ptr<const float>(r.up_weight), w.ffn.up_bias = ptr<const float>(r.up_bias);
    w.ffn.down_weight = ptr<const float>(r.down_weight), w.ffn.down_bias = ptr<const float>(r.down_bias);
    w.ffn.gate_weight_scale = ptr<const float>(r.gate_weight_scale), w.ffn.up_weight_scale = ptr<const float>(r.up_weight_scale);
    w.ffn.down_weight_scale = ptr<const float>(r.down_weight_scale);
    return status(impl_.set_block(i, w));
  }

  int setFinalNorm(uint32_t weight, uint32_t bias) {
    return status(valid_ ? impl_.set_final_norm(ptr<const float>(weight), ptr<const float>(bias)) : mha::Status::kInvalidArgument);
  }
  int setHead(uint32_t weight) {
    return status(valid_ ? impl_.set_head(ptr<const float>(weight)) : mha::Status::kInvalidArgument);
  }
  // The token table (head false) or the untied head: reserved anew, then rows [first, first + count) in order.
  int beginTableRows(bool head) {
    if (!valid_) return status(mha::Status::kInvalidArgument);
    return status(head ? impl_.begin_head_rows() : impl_.begin_token_rows());
  }
  int tableRows(bool head) const { return impl_.table_rows(head); }
  int setTableRows(bool head, int first, int count, uint32_t rows) {
    if (!valid_) return status(mha::Status::kInvalidArgument);
    const float* p = ptr<const float>(rows);
    return status(head ? impl_.set_head_rows(first, count, p) : impl_.set_token_rows(first, count, p));
  }

  // args: a ModelForward record; cache: null or this model's cache.
  int forward(uint32_t args, mha::ModelCache* cache) {
    if (!valid_) return status(mha::Status::kInvalidArgument);
    const mha::abi::ModelForward& r = record<mha::abi::ModelForward>(args);
    mha::ModelForwardArgs a;
    a.B = r.batch, a.L = r.length, a.ids = ptr<const int32_t>(r.ids), a.token_types = ptr<const int32_t>(r.token_types);
    a.positions = ptr<const int32_t>(r.positions), a.key_padding = ptr<const uint8_t>(r.key_padding);
    a.cache = cache, a.output = ptr<float>(r.output), a.last_only = r.last_only != 0, a.weights = ptr<float>(r.weights);
    return status(impl_.forward(a, pool(), workspace()));
  }

  double lastRequestBytes() const { return static_cast<double>(impl_.last_request_bytes()); }
  double memoryBytes() const { return static_cast<double>(impl_.memory_bytes()); }
  const mha::ModelConfig& config() const { return impl_.config(); }

 private:
  static int status(mha::Status s) { return static_cast<int>(s); }
  bool valid_;
  mha::Model impl_;
  LiveCount live_;
};

// A model's KV caches (one per block), allocated on first use.
class ModelCache {
 public:
  // rec: a ModelCacheConfig record.
  ModelCache(const Model& model, uint32_t rec)
      : cfg_(model.config()),
        impl_(cfg_, record<mha::abi::ModelCacheConfig>(rec).batch, record<mha::abi::ModelCacheConfig>(rec).capacity) {}
  int readyStatus() { return static_cast<int>(impl_.ready()); }
  double requestBytes() const { return static_cast<double>(mha::ModelCache::bytes(cfg_, impl_.batch(), impl_.capacity())); }
  int length() const { return impl_.length(); }
  void reset() { impl_.reset(); }
  bool truncate(int n) { return impl_.truncate(n); }
  double memoryBytes() const { return static_cast<double>(impl_.memory_bytes()); }
  mha::ModelCache* get() { return &impl_; }

 private:
  mha::ModelConfig cfg_;
  mha::ModelCache impl_;
  LiveCount live_;
};

int modelForward(Model& model, uint32_t args, ModelCache* cache) { return model.forward(args, cache ? cache->get() : nullptr); }

}  // namespace
}  // namespace mha_bind

EMSCRIPTEN_BINDINGS(mha_model) {
  using namespace mha_bind;
  emscripten::class_<Model>("Model")
      .constructor<uint32_t>()
      .function("setEmbeddings", &Model::setEmbeddings)
      .function("setBlock", &Model::setBlock)
      .function("setFinalNorm", &Model::setFinalNorm)
      .function("setHead", &Model::setHead)
      .function("beginTableRows", &Model::beginTableRows)
      .function("setTableRows", &Model::setTableRows)
      .function("tableRows", &Model::tableRows)
      .function("forward", &modelForward, emscripten::allow_raw_pointers())
      .function("lastRequestBytes", &Model::lastRequestBytes)
      .function("memoryBytes", &Model::memoryBytes);
  emscripten::class_<ModelCache>("ModelCache")
      .constructor<const Model&, uint32_t>()
      .function("ready", &ModelCache::readyStatus)
      .function("requestBytes", &ModelCache::requestBytes)
      .function("length", &ModelCache::length)
      .function("reset", &ModelCache::reset)
      .function("truncate", &ModelCache::truncate)
      .function("memoryBytes", &ModelCache::memoryBytes);
}
