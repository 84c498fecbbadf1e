// Where and in what precision the engine computes: parsing of --device/--dtype and thread setup.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>

namespace glamm {

// "cpu", "cuda", "cuda:N". Throws Error for anything else, or for CUDA when this LibTorch build
// or this machine has no CUDA device.
c10::Device parse_device(const std::string& name);
// "f32" | "fp32" | "float32", "bf16" | "bfloat16", "f16" | "fp16" | "float16".
c10::ScalarType parse_dtype(const std::string& name);
const char* dtype_short_name(c10::ScalarType type);

// fp16 matmul is not implemented on CPU in LibTorch 1.13: f16 on CPU computes in bf16 instead.
// Returns the dtype that will really be used on `device`.
c10::ScalarType effective_dtype(c10::ScalarType requested, const c10::Device& device);

// Sets LibTorch's intra-op threads (it starts with 1 on some VMs). 0 = the number of cores.
void set_threads(int threads);

// True when this LibTorch build can use CUDA and a device is present.
bool cuda_available();

// True when the environment variable `name` is set to something other than "" or "0" (the
// GLAMM_NO_* switches that turn a fast path off to compare against the plain one). Read once per
// name by each caller that caches it.
bool env_flag(const char* name);

} // namespace glamm
