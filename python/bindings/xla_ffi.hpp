// XLA FFI handlers of powerret (see xla_ffi.cpp): (target name, platform, handler address).
#pragma once

#include <vector>

namespace powerret::xla {

struct Handler {
  const char* name;      // FFI target name, e.g. "powerret_forward"
  const char* platform;  // "cpu" or "CUDA"
  void* fn;              // XLA_FFI_Handler*
};

std::vector<Handler> handlers();

}  // namespace powerret::xla
