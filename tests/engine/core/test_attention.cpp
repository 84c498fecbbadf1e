// The written-out form of the fused attention (what the CPU emulation computes), on values worked
// out by hand, and the emulation switch.
#include "core/attention.h"
#include "core/device.h"
#include "core/error.h"
#include "core/rms_norm.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace glamm {
namespace {

// One head, width d = 4 (scale 1/2), two queries, two keys with scores 0 and 2 ln 3 before
// scaling, so the softmax weights are 1/4 and 3/4 where both keys are visible.
struct HandCase {
    at::Tensor query = torch::tensor({1.f, 0.f, 0.f, 0.f, 1.f, 0.f, 0.f, 0.f}).view({1, 1, 2, 4});
    at::Tensor key   = torch::tensor({0.f, 0.f, 0.f, 0.f, float(2 * std::log(3.0)), 0.f, 0.f, 0.f})
                         .view({1, 1, 2, 4});
    at::Tensor value = torch::tensor({4.f, 0.f, 0.f, 0.f, 8.f, 0.f, 0.f, 0.f}).view({1, 1, 2, 4});
};

TEST(FusedAttention, WrittenOutFormOnHandWorkedValues) {
    HandCase h;
    // Both keys: 4 * 1/4 + 8 * 3/4 = 7 for both rows.
    at::Tensor out = fused_attention(h.query, h.key, h.value, {}, false);
    EXPECT_NEAR(out[0][0][0][0].item<float>(), 7.f, 1e-5);
    EXPECT_NEAR(out[0][0][1][0].item<float>(), 7.f, 1e-5);
    // Causal: row 0 sees key 0 only (4); row 1 both (7).
    out = fused_attention(h.query, h.key, h.value, {}, true);
    EXPECT_NEAR(out[0][0][0][0].item<float>(), 4.f, 1e-5);
    EXPECT_NEAR(out[0][0][1][0].item<float>(), 7.f, 1e-5);
    // Boolean mask (true = visible): key 1 hidden for row 1 -> 4.
    const at::Tensor visible = torch::tensor({true, true, true, false}).view({2, 2});
    out                      = fused_attention(h.query, h.key, h.value, visible, false);
    EXPECT_NEAR(out[0][0][0][0].item<float>(), 7.f, 1e-5);
    EXPECT_NEAR(out[0][0][1][0].item<float>(), 4.f, 1e-5);
    // Additive bias of -2 ln 3 on key 1 evens the weights: (4 + 8) / 2 = 6.
    const at::Tensor bias = torch::tensor({0.f, float(-std::log(3.0))}).view({1, 2});
    out                   = fused_attention(h.query, h.key, h.value, bias, false);
    EXPECT_NEAR(out[0][0][0][0].item<float>(), 6.f, 1e-5);
    // A causal mask needs a square score matrix.
    EXPECT_THROW(fused_attention(h.query.narrow(2, 0, 1), h.key, h.value, {}, true), Error);
}

// RMSNorm of x = (3, 4): mean(x^2) = 12.5, so x / sqrt(12.5) = (0.8485, 1.1314); weights (2, 0.5).
TEST(RmsNorm, ReferenceAndFusedFormsOnHandWorkedValues) {
    const auto x      = torch::tensor({3.f, 4.f});
    const auto weight = torch::tensor({2.f, 0.5f});
    const double r    = 1.0 / std::sqrt(12.5 + 1e-6);
    at::Tensor out    = rms_norm(x, weight, 1e-6);
    EXPECT_NEAR(out[0].item<float>(), 3 * r * 2, 1e-6);
    EXPECT_NEAR(out[1].item<float>(), 4 * r * 0.5, 1e-6);
    // bf16: the reference rounds x * r, then the product with the weight; the fused form (the
    // GPU's, emulated) rounds once. Both within one bf16 step (2^-8 relative) of the exact value.
    const auto xb = x.to(torch::kBFloat16), wb = weight.to(torch::kBFloat16);
    const at::Tensor reference = rms_norm(xb, wb, 1e-6);
    EXPECT_FALSE(fused_rms_norm_enabled(xb));
    emulate_gpu_kernels_on_cpu(true);
    EXPECT_TRUE(fused_rms_norm_enabled(xb));
    const at::Tensor fused = rms_norm(xb, wb, 1e-6);
    emulate_gpu_kernels_on_cpu(false);
    EXPECT_EQ(fused.scalar_type(), torch::kBFloat16);
    for (int i = 0; i < 2; ++i) {
        const double exact = (i == 0 ? 3 * r * 2 : 4 * r * 0.5);
        EXPECT_NEAR(reference[i].item<float>(), exact, exact / 256) << i;
        EXPECT_NEAR(fused[i].item<float>(), exact, exact / 256) << i;
    }
    // The fused form is the f32 product rounded once.
    EXPECT_TRUE(fused.equal((x * r * weight).to(torch::kBFloat16)));
}

TEST(FusedAttention, CpuEmulationSwitch) {
    const at::Tensor q = torch::zeros({1, 1, 1, 4});
    emulate_gpu_kernels_on_cpu(true);
    EXPECT_TRUE(fused_attention_enabled(q));
    emulate_gpu_kernels_on_cpu(false);
    // Off again unless the environment asks for it.
    EXPECT_EQ(fused_attention_enabled(q), std::getenv("GLAMM_EMULATE_GPU_KERNELS") != nullptr);
}

} // namespace
} // namespace glamm
