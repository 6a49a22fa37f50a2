// Status codes shared by the C++ core and the bindings, defined once in
// bindings/abi.js (generated as abi.h). No exceptions are used anywhere in the
// core (the wasm builds are compiled with -fno-exceptions), so every operation
// that can fail returns one of these:
//   kOk
//   kInvalidArgument  a size, stride or pointer the caller should have validated
//   kOutOfMemory      an allocation failed; see last_request_bytes()
//   kNoWeights        forward before set_weights
#pragma once
#include "abi.h"

namespace mha {

using Status = abi::Status;

}  // namespace mha
