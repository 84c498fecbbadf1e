#include "core/device.h"

#include "core/error.h"

#include <torch/torch.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>

namespace glamm {

bool cuda_available() {
    return torch::cuda::is_available();
}

namespace {
std::atomic<bool> emulate_gpu_kernels{false};
} // namespace

void emulate_gpu_kernels_on_cpu(bool on) {
    emulate_gpu_kernels = on;
}

bool gpu_kernels_emulated() {
    static const bool from_env = env_flag("GLAMM_EMULATE_GPU_KERNELS");
    return from_env || emulate_gpu_kernels;
}

bool env_flag(const char* name) {
    const char* v = std::getenv(name);
    return v && *v && std::string(v) != "0";
}

c10::Device parse_device(const std::string& name) {
    if (name == "cpu") return c10::Device(c10::kCPU);
    if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
        if (!cuda_available())
            fail(
                "device \"", name, "\" requested but ",
                "this build's LibTorch has no CUDA support or no GPU is visible (use --device cpu, "
                "or build against a CUDA LibTorch: see README)");
        try {
            c10::Device device(name);
            if (device.has_index() &&
                device.index() >= static_cast<int>(torch::cuda::device_count()))
                fail("device \"", name, "\" does not exist (", torch::cuda::device_count(),
                     " GPUs)");
            return device;
        } catch (const c10::Error&) {
            fail("cannot parse device \"", name, "\"");
        }
    }
    fail("unknown device \"", name, "\" (cpu, cuda, cuda:N)");
}

c10::ScalarType parse_dtype(const std::string& name) {
    if (name == "f32" || name == "fp32" || name == "float32") return c10::kFloat;
    if (name == "bf16" || name == "bfloat16") return c10::kBFloat16;
    if (name == "f16" || name == "fp16" || name == "float16") return c10::kHalf;
    fail("unknown dtype \"", name, "\" (f32, bf16, f16)");
}

DefaultDtypeGuard::DefaultDtypeGuard(c10::ScalarType dtype) : saved_(at::get_default_dtype()) {
    at::set_default_dtype(c10::scalarTypeToTypeMeta(dtype));
}

DefaultDtypeGuard::~DefaultDtypeGuard() {
    at::set_default_dtype(saved_);
}

bool parse_int8_quantization(const std::string& name) {
    if (name == "int8") return true;
    if (name.empty() || name == "none") return false;
    fail("unknown quantization \"", name, "\" (int8 or none)");
}

const char* dtype_short_name(c10::ScalarType type) {
    switch (type) {
    case c10::kFloat:
        return "f32";
    case c10::kBFloat16:
        return "bf16";
    case c10::kHalf:
        return "f16";
    default:
        return c10::toString(type);
    }
}

c10::ScalarType effective_dtype(c10::ScalarType requested, const c10::Device& device) {
    if (requested == c10::kHalf && device.is_cpu()) return c10::kBFloat16;
    return requested;
}

void set_threads(int threads) {
    if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    at::set_num_threads(threads);
}

} // namespace glamm
