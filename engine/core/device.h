// Where and in what precision the engine computes: parsing of --device/--dtype and thread setup.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>
#include <c10/util/typeid.h>

#include <string>

namespace glamm {

// "cpu", "cuda", "cuda:N". Throws Error for anything else, or for CUDA when this LibTorch build
// or this machine has no CUDA device.
c10::Device parse_device(const std::string& name);
// "f32" | "fp32" | "float32", "bf16" | "bfloat16", "f16" | "fp16" | "float16".
c10::ScalarType parse_dtype(const std::string& name);
const char* dtype_short_name(c10::ScalarType type);
// ModelOptions::quantize: "int8" -> true; "" or "none" -> false. Throws Error for anything else.
bool parse_int8_quantization(const std::string& name);

// Sets LibTorch's default floating dtype (what modules create their parameters in) for a scope.
class DefaultDtypeGuard {
public:
    explicit DefaultDtypeGuard(c10::ScalarType dtype);
    ~DefaultDtypeGuard();
    DefaultDtypeGuard(const DefaultDtypeGuard&)            = delete;
    DefaultDtypeGuard& operator=(const DefaultDtypeGuard&) = delete;

private:
    caffe2::TypeMeta saved_;
};

// fp16 matmul is not implemented on CPU in LibTorch 1.13: f16 on CPU computes in bf16 instead.
// Returns the dtype that will really be used on `device`.
c10::ScalarType effective_dtype(c10::ScalarType requested, const c10::Device& device);

// Sets LibTorch's intra-op threads (it starts with 1 on some VMs). 0 = the number of cores.
void set_threads(int threads);

// True when this LibTorch build can use CUDA and a device is present.
bool cuda_available();

// For tests: makes the GPU-only fast paths (fused attention, fused RMSNorm, merged projections)
// run on the CPU in their written-out form, so the plumbing around the GPU's kernels (head
// layouts, bias and mask shapes, what is contiguous) runs in the CPU suite against the golden
// data. Process-wide; off by default; also on with the environment variable
// GLAMM_EMULATE_GPU_KERNELS=1 (what the CLI golden tests use).
void emulate_gpu_kernels_on_cpu(bool on);
bool gpu_kernels_emulated();

// True when the environment variable `name` is set to something other than "" or "0" (the
// GLAMM_NO_* switches that turn a fast path off to compare against the plain one). Read once per
// name by each caller that caches it.
bool env_flag(const char* name);

} // namespace glamm
