// Status codes shared by the C++ core and the bindings, defined once in
// bindings/abi.js (generated as abi.h). The core throws nothing and calls
// nothing that throws (memory comes from FloatBuffer and Workspace, which report
// failure), so every operation that can fail returns one of these. The builds do
// not pass -fno-exceptions: Emscripten only disables catching by default, so a
// throw would end the call with a bare number, which the JS bindings treat as a
// stopped instance.
//   kOk
//   kInvalidArgument  a size, stride or pointer the caller should have validated
//   kOutOfMemory      an allocation failed; see last_request_bytes()
//   kNoWeights        forward before set_weights
#pragma once
#include "abi.h"

namespace mha {

using Status = abi::Status;

}  // namespace mha
