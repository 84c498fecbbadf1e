// The written-out form of the fused attention (what the CPU emulation computes), on values worked
// out by hand, and the emulation switch.
#include "core/attention.h"
#include "core/error.h"

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

TEST(FusedAttention, CpuEmulationSwitch) {
    const at::Tensor q = torch::zeros({1, 1, 1, 4});
    emulate_fused_attention_on_cpu(true);
    EXPECT_TRUE(fused_attention_enabled(q));
    emulate_fused_attention_on_cpu(false);
    // Off again unless the environment asks for it.
    EXPECT_EQ(fused_attention_enabled(q), std::getenv("GLAMM_EMULATE_FUSED_ATTENTION") != nullptr);
}

} // namespace
} // namespace glamm
