// Status codes shared by the C++ core and the bindings. No exceptions are used
// anywhere in the core (the wasm builds are compiled with -fno-exceptions), so
// every operation that can fail returns one of these.
#pragma once
#include <cstddef>

namespace mha {

enum class Status : int {
  kOk = 0,
  kInvalidArgument = 1,  // a size, stride or pointer the caller should have validated
  kOutOfMemory = 2,      // an allocation failed; see last_request_bytes()
  kNoWeights = 3,        // forward before set_weights
};

}  // namespace mha
