#include "core/linear.h"

#include "core/device.h"
#include "core/error.h"
#include "core/safetensors.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GLAMM_HAVE_X86_GEMV 1
// GCC 12's AVX512 intrinsics (_mm512_reduce_add_ps, the conversions) start from an
// uninitialised register that -Wmaybe-uninitialized reports at every inlined use: a known false
// positive, silenced for this file's kernels.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
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

// Largest magnitude of a symmetric int8 code (-127 .. 127: -128 is left out so that the codes
// are symmetric around 0).
constexpr float kInt8Max = 127;

// v rounded to the nearest integer, ties to even, for |v| < 2^22: adding 1.5 · 2^23 leaves no
// fraction bits and the FPU rounds to nearest even (the default mode; no -ffast-math here).
float round_half_even(float v) {
    constexpr float kShift = 12582912.0F; // 1.5 · 2^23
    return (v + kShift) - kShift;
}

// The tail of an int8 row past the last whole vector, in plain floats.
float int8_tail(const float* x, const int8_t* row, int64_t from, int64_t in) {
    float s = 0;
    for (int64_t i = from; i < in; ++i) s += x[i] * static_cast<float>(row[i]);
    return s;
}

#ifdef GLAMM_HAVE_X86_GEMV
// 16 int8 weights widened to f32 lanes.
__attribute__((target("avx512f"))) inline __m512 widen16(const int8_t* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)p)));
}

// y[o] = scales[o] · Σ_i x[i] w[o, i] for o in [begin, end): int8 weights widened to f32, f32
// products and sums, four rows at a time (as gemv_rows).
__attribute__((target("avx512f"))) void gemv_int8_rows_avx512(const float* x, const int8_t* w,
                                                              const float* scales, int64_t in,
                                                              int64_t begin, int64_t end,
                                                              float* y) {
    constexpr int64_t lanes  = 16;
    const int64_t vector_end = in - in % lanes;
    int64_t o                = begin;
    for (; o + kRowBlock <= end; o += kRowBlock) {
        const int8_t* w0 = w + o * in;
        const int8_t* w1 = w0 + in;
        const int8_t* w2 = w1 + in;
        const int8_t* w3 = w2 + in;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        __m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
        for (int64_t i = 0; i < vector_end; i += lanes) {
            const __m512 xv = _mm512_loadu_ps(x + i);
            a0              = _mm512_fmadd_ps(xv, widen16(w0 + i), a0);
            a1              = _mm512_fmadd_ps(xv, widen16(w1 + i), a1);
            a2              = _mm512_fmadd_ps(xv, widen16(w2 + i), a2);
            a3              = _mm512_fmadd_ps(xv, widen16(w3 + i), a3);
        }
        y[o]     = scales[o] * (_mm512_reduce_add_ps(a0) + int8_tail(x, w0, vector_end, in));
        y[o + 1] = scales[o + 1] * (_mm512_reduce_add_ps(a1) + int8_tail(x, w1, vector_end, in));
        y[o + 2] = scales[o + 2] * (_mm512_reduce_add_ps(a2) + int8_tail(x, w2, vector_end, in));
        y[o + 3] = scales[o + 3] * (_mm512_reduce_add_ps(a3) + int8_tail(x, w3, vector_end, in));
    }
    for (; o < end; ++o) {
        const int8_t* row = w + o * in;
        __m512 a          = _mm512_setzero_ps();
        for (int64_t i = 0; i < vector_end; i += lanes)
            a = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), widen16(row + i), a);
        y[o] = scales[o] * (_mm512_reduce_add_ps(a) + int8_tail(x, row, vector_end, in));
    }
}

// 8 int8 weights widened to f32 lanes.
__attribute__((target("avx2,fma"))) inline __m256 widen8(const int8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)p)));
}

__attribute__((target("avx2,fma"))) inline float sum8(__m256 v) {
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

// The same with 256-bit vectors (CPUs without AVX512).
__attribute__((target("avx2,fma"))) void gemv_int8_rows_avx2(const float* x, const int8_t* w,
                                                             const float* scales, int64_t in,
                                                             int64_t begin, int64_t end, float* y) {
    constexpr int64_t lanes  = 8;
    const int64_t vector_end = in - in % lanes;
    int64_t o                = begin;
    for (; o + kRowBlock <= end; o += kRowBlock) {
        const int8_t* w0 = w + o * in;
        const int8_t* w1 = w0 + in;
        const int8_t* w2 = w1 + in;
        const int8_t* w3 = w2 + in;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        for (int64_t i = 0; i < vector_end; i += lanes) {
            const __m256 xv = _mm256_loadu_ps(x + i);
            a0              = _mm256_fmadd_ps(xv, widen8(w0 + i), a0);
            a1              = _mm256_fmadd_ps(xv, widen8(w1 + i), a1);
            a2              = _mm256_fmadd_ps(xv, widen8(w2 + i), a2);
            a3              = _mm256_fmadd_ps(xv, widen8(w3 + i), a3);
        }
        y[o]     = scales[o] * (sum8(a0) + int8_tail(x, w0, vector_end, in));
        y[o + 1] = scales[o + 1] * (sum8(a1) + int8_tail(x, w1, vector_end, in));
        y[o + 2] = scales[o + 2] * (sum8(a2) + int8_tail(x, w2, vector_end, in));
        y[o + 3] = scales[o + 3] * (sum8(a3) + int8_tail(x, w3, vector_end, in));
    }
    for (; o < end; ++o) {
        const int8_t* row = w + o * in;
        __m256 a          = _mm256_setzero_ps();
        for (int64_t i = 0; i < vector_end; i += lanes)
            a = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), widen8(row + i), a);
        y[o] = scales[o] * (sum8(a) + int8_tail(x, row, vector_end, in));
    }
}

// out[r, i] = scales[r] · values[r, i] for rows [begin, end), in f32 (`bf16` false) or rounded to
// nearest even bf16: one pass over the int8 rows (the prefill's weight, see linear_forward).
__attribute__((target("avx512f,avx512bw,avx512bf16"))) void
dequantize_rows_avx512(const int8_t* values, const float* scales, int64_t in, int64_t begin,
                       int64_t end, void* out, bool bf16) {
    constexpr int64_t lanes  = 16;
    const int64_t vector_end = in - in % lanes;
    for (int64_t r = begin; r < end; ++r) {
        const int8_t* row  = values + r * in;
        const __m512 scale = _mm512_set1_ps(scales[r]);
        if (bf16) {
            auto* dst = static_cast<uint16_t*>(out) + r * in;
            for (int64_t i = 0; i < vector_end; i += lanes)
                _mm256_storeu_si256((__m256i*)(dst + i), (__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(
                                                             scale, widen16(row + i))));
            for (int64_t i = vector_end; i < in; ++i) {
                const c10::BFloat16 v(scales[r] * static_cast<float>(row[i]));
                dst[i] = v.x;
            }
        } else {
            float* dst = static_cast<float*>(out) + r * in;
            for (int64_t i = 0; i < vector_end; i += lanes)
                _mm512_storeu_ps(dst + i, _mm512_mul_ps(scale, widen16(row + i)));
            for (int64_t i = vector_end; i < in; ++i)
                dst[i] = scales[r] * static_cast<float>(row[i]);
        }
    }
}
#endif

using Int8Rows = void (*)(const float*, const int8_t*, const float*, int64_t, int64_t, int64_t,
                          float*);

// The best int8 kernel this CPU runs, lowered by GLAMM_INT8_KERNEL (read on every call: tests
// switch it) or turned off by GLAMM_NO_GEMV; null: none.
Int8Rows int8_rows_kernel(std::string* name = nullptr) {
    auto chosen = [&](Int8Rows kernel, const char* kernel_name) {
        if (name) *name = kernel_name;
        return kernel;
    };
#ifdef GLAMM_HAVE_X86_GEMV
    static const bool avx512 = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") != 0;
    }();
    static const bool avx2 = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }();
    const char* wanted    = std::getenv("GLAMM_INT8_KERNEL");
    const std::string cap = wanted ? wanted : "";
    if (gemv_disabled() || cap == "none") return chosen(nullptr, "none");
    if (avx512 && cap != "avx2") return chosen(gemv_int8_rows_avx512, "avx512");
    if (avx2) return chosen(gemv_int8_rows_avx2, "avx2");
#endif
    return chosen(nullptr, "none");
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

Int8Weight Int8Weight::quantize(const at::Tensor& weight) {
    if (weight.dim() != 2 || !at::isFloatingType(weight.scalar_type()) || !weight.device().is_cpu())
        fail("int8 quantization needs a 2-D floating-point weight on the CPU, got ", weight.sizes(),
             " ", weight.scalar_type(), " on ", weight.device());
    at::NoGradGuard no_grad;
    const at::Tensor w = weight.contiguous(); // a mapped release tensor already is: no copy
    const int64_t out = w.size(0), in = w.size(1);
    Int8Weight q;
    q.values       = at::empty({out, in}, w.options().dtype(at::kChar));
    q.scales       = at::empty({out}, w.options().dtype(at::kFloat));
    int8_t* values = q.values.data_ptr<int8_t>();
    float* scales  = q.scales.data_ptr<float>();
    std::atomic<bool> finite{true};
    // Row by row in two passes over the row (its largest magnitude, then its codes), with no
    // temporary tensors: at 7B, elementwise LibTorch ops made ~60 million page faults of fresh
    // f32 temporaries and took minutes.
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, w.scalar_type(), "quantize", [&] {
        const scalar_t* source = w.data_ptr<scalar_t>();
        at::parallel_for(0, out, kRowsPerTask, [&](int64_t begin, int64_t end) {
            for (int64_t r = begin; r < end; ++r) {
                const scalar_t* row = source + r * in;
                float largest       = 0;
                bool row_finite     = true;
                for (int64_t i = 0; i < in; ++i) {
                    const float v = static_cast<float>(row[i]);
                    row_finite &= std::isfinite(v);
                    largest = std::max(largest, std::abs(v));
                }
                if (!row_finite) finite = false;
                scales[r]           = largest / kInt8Max;
                const float divisor = scales[r] > 0 ? scales[r] : 1;
                int8_t* codes       = values + r * in;
                for (int64_t i = 0; i < in; ++i)
                    codes[i] = static_cast<int8_t>(
                        std::clamp(round_half_even(static_cast<float>(row[i]) / divisor), -kInt8Max,
                                   kInt8Max));
            }
        });
    });
    if (!finite) fail("int8 quantization: a ", weight.sizes(), " weight holds a non-finite value");
    return q;
}

at::Tensor Int8Weight::dequantize(c10::ScalarType dtype) const {
    return (values.to(at::kFloat) * scales.unsqueeze(1)).to(dtype); // [O, I]
}

namespace {

// The weight dequantized to `dtype` for a product with several rows (a prefill): on CPUs with
// AVX512-BF16 in one pass into a buffer this thread keeps for the next call (the language
// model's largest linear, 90 MB in bf16 at 7B), instead of three passes through fresh f32
// tensors; the result must be used before the thread's next call.
at::Tensor dequantized_for_product(const Int8Weight& weight, c10::ScalarType dtype) {
#ifdef GLAMM_HAVE_X86_GEMV
    const bool fused = cpu_has_avx512_bf16() && !gemv_disabled() &&
                       weight.values.device().is_cpu() &&
                       (dtype == at::kFloat || dtype == at::kBFloat16);
    if (fused) {
        const int64_t out = weight.values.size(0), in = weight.values.size(1);
        thread_local at::Tensor buffer;
        if (!buffer.defined() || buffer.scalar_type() != dtype || buffer.numel() < out * in)
            buffer = at::empty({out * in}, weight.values.options().dtype(dtype));
        const at::Tensor values = weight.values.contiguous();
        const at::Tensor scales = weight.scales.contiguous();
        const int8_t* vp        = values.data_ptr<int8_t>();
        const float* sp         = scales.data_ptr<float>();
        void* op                = buffer.data_ptr();
        const bool bf16         = dtype == at::kBFloat16;
        at::parallel_for(0, out, kRowsPerTask, [&](int64_t begin, int64_t end) {
            dequantize_rows_avx512(vp, sp, in, begin, end, op, bf16);
        });
        return buffer.narrow(0, 0, out * in).view({out, in}); // [O, I]
    }
#endif
    return weight.dequantize(dtype);
}

} // namespace

int64_t Int8Weight::bytes() const {
    return values.numel() * values.element_size() + scales.numel() * scales.element_size();
}

std::string int8_gemv_kernel() {
    std::string name;
    int8_rows_kernel(&name);
    return name;
}

at::Tensor linear_forward(const at::Tensor& x, const Int8Weight& weight, const at::Tensor& bias) {
    if (!weight.defined()) fail("linear_forward: the int8 weight is empty");
    const int64_t in = weight.values.size(1), out = weight.values.size(0);
    if (x.dim() < 1 || x.size(-1) != in)
        fail("linear_forward: x ", x.sizes(), " does not match an int8 weight [", out, ", ", in,
             "]");
    const Int8Rows kernel = int8_rows_kernel();
    const bool one_row    = x.numel() == in && x.device().is_cpu() &&
                         weight.values.device().is_cpu() &&
                         !(at::GradMode::is_enabled() && x.requires_grad());
    if (!kernel || !one_row)
        return at::linear(x, dequantized_for_product(weight, x.scalar_type()),
                          bias.defined() ? bias.to(x.scalar_type()) : bias); // [..., O]
    const at::Tensor xf = x.to(at::kFloat).contiguous();                     // [I] f32
    const at::Tensor wc = weight.values.contiguous();
    const at::Tensor sc = weight.scales.contiguous();
    at::Tensor y        = at::empty({out}, x.options().dtype(at::kFloat)); // [O] f32
    const float* xp     = xf.data_ptr<float>();
    const int8_t* wp    = wc.data_ptr<int8_t>();
    const float* sp     = sc.data_ptr<float>();
    float* yp           = y.data_ptr<float>();
    at::parallel_for(0, out, kRowsPerTask,
                     [&](int64_t begin, int64_t end) { kernel(xp, wp, sp, in, begin, end, yp); });
    if (bias.defined()) y += bias.to(at::kFloat);
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back()               = out;
    return y.to(x.scalar_type()).view(shape); // [..., O], rounded once
}

at::Tensor linear_forward(const torch::nn::LinearImpl& layer, const Int8Weight& int8,
                          const at::Tensor& x) {
    return int8.defined() ? linear_forward(x, int8, layer.bias) : linear_forward(layer, x);
}

Int8Weight quantize_int8(torch::nn::LinearImpl& layer) {
    Int8Weight q = Int8Weight::quantize(layer.weight);
    at::NoGradGuard no_grad;
    // Where the weight views a mapped release file (LoadReport::share_stored_tensors), its pages
    // stay resident after the tensor is gone unless given back; only when no other tensor
    // shares its storage.
    const void* bytes       = layer.weight.data_ptr();
    const size_t byte_count = layer.weight.nbytes();
    const bool sole_viewer  = layer.weight.storage().use_count() == 1;
    // set_data changes the tensor the module's parameter list holds too, so the float storage
    // is released.
    layer.weight.set_data(at::empty({0, layer.weight.size(1)}, layer.weight.options()));
    if (sole_viewer) MappedFile::release_pages(bytes, byte_count);
    return q;
}

} // namespace glamm
