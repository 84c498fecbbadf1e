#include "core/linear.h"

#include "core/device.h"

#include <ATen/Parallel.h>

#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GLAMM_HAVE_X86_GEMV 1
#endif

namespace glamm {

namespace {

// Rows handled together by the kernel: four independent accumulators keep the FMA pipes busy
// while the weights stream in.
constexpr int64_t kRowBlock = 4;
// bf16 lanes per 512-bit register.
constexpr int64_t kLanes = 32;
// Output rows per task of the thread pool (a task streams this many rows of weights).
constexpr int64_t kRowsPerTask = 64;

float bf16_to_float(uint16_t v) {
    const uint32_t bits = static_cast<uint32_t>(v) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

#ifdef GLAMM_HAVE_X86_GEMV
bool cpu_has_avx512_bf16() {
    static const bool has = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
    }();
    return has;
}

// y[o] = Σ_i x[i] w[o, i] for o in [begin, end), f32 accumulation of bf16 products.
__attribute__((target("avx512f,avx512bw,avx512bf16"))) void
gemv_rows(const uint16_t* x, const uint16_t* w, int64_t in, int64_t begin, int64_t end, float* y) {
    const int64_t vector_end = in - in % kLanes;
    auto tail                = [&](const uint16_t* row) {
        float s = 0;
        for (int64_t i = vector_end; i < in; ++i) s += bf16_to_float(x[i]) * bf16_to_float(row[i]);
        return s;
    };
    int64_t o = begin;
    for (; o + kRowBlock <= end; o += kRowBlock) {
        const uint16_t* w0 = w + o * in;
        const uint16_t* w1 = w0 + in;
        const uint16_t* w2 = w1 + in;
        const uint16_t* w3 = w2 + in;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        __m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
        for (int64_t i = 0; i < vector_end; i += kLanes) {
            const __m512bh xv = (__m512bh)_mm512_loadu_si512(x + i);
            a0                = _mm512_dpbf16_ps(a0, xv, (__m512bh)_mm512_loadu_si512(w0 + i));
            a1                = _mm512_dpbf16_ps(a1, xv, (__m512bh)_mm512_loadu_si512(w1 + i));
            a2                = _mm512_dpbf16_ps(a2, xv, (__m512bh)_mm512_loadu_si512(w2 + i));
            a3                = _mm512_dpbf16_ps(a3, xv, (__m512bh)_mm512_loadu_si512(w3 + i));
        }
        y[o]     = _mm512_reduce_add_ps(a0) + tail(w0);
        y[o + 1] = _mm512_reduce_add_ps(a1) + tail(w1);
        y[o + 2] = _mm512_reduce_add_ps(a2) + tail(w2);
        y[o + 3] = _mm512_reduce_add_ps(a3) + tail(w3);
    }
    for (; o < end; ++o) {
        const uint16_t* row = w + o * in;
        __m512 a            = _mm512_setzero_ps();
        for (int64_t i = 0; i < vector_end; i += kLanes)
            a = _mm512_dpbf16_ps(a, (__m512bh)_mm512_loadu_si512(x + i),
                                 (__m512bh)_mm512_loadu_si512(row + i));
        y[o] = _mm512_reduce_add_ps(a) + tail(row);
    }
}
#endif

bool gemv_disabled() {
    static const bool off = env_flag("GLAMM_NO_GEMV");
    return off;
}

} // namespace

bool streaming_gemv_applies(const at::Tensor& x, const at::Tensor& weight) {
#ifdef GLAMM_HAVE_X86_GEMV
    return !gemv_disabled() && cpu_has_avx512_bf16() && x.device().is_cpu() &&
           weight.device().is_cpu() && x.scalar_type() == at::kBFloat16 &&
           weight.scalar_type() == at::kBFloat16 && weight.dim() == 2 && x.dim() >= 1 &&
           x.size(-1) == weight.size(1) && x.numel() == weight.size(1) &&
           !(at::GradMode::is_enabled() && (x.requires_grad() || weight.requires_grad()));
#else
    (void)x, (void)weight;
    return false;
#endif
}

at::Tensor linear_forward(const torch::nn::LinearImpl& layer, const at::Tensor& x) {
    return linear_forward(x, layer.weight, layer.bias);
}

at::Tensor linear_forward(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
    if (!streaming_gemv_applies(x, weight)) return at::linear(x, weight, bias);
#ifdef GLAMM_HAVE_X86_GEMV
    const int64_t in = weight.size(1), out = weight.size(0);
    const at::Tensor xc = x.contiguous(), wc = weight.contiguous();
    at::Tensor y   = at::empty({out}, x.options().dtype(at::kFloat)); // [O] f32
    const auto* xp = reinterpret_cast<const uint16_t*>(xc.data_ptr());
    const auto* wp = reinterpret_cast<const uint16_t*>(wc.data_ptr());
    float* yp      = y.data_ptr<float>();
    at::parallel_for(0, out, kRowsPerTask,
                     [&](int64_t begin, int64_t end) { gemv_rows(xp, wp, in, begin, end, yp); });
    if (bias.defined()) y += bias.to(at::kFloat);
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back()               = out;
    return y.to(at::kBFloat16).view(shape); // [..., O], rounded once as at::linear rounds
#else
    return at::linear(x, weight, bias);
#endif
}

} // namespace glamm
