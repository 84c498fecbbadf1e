// linear_forward: the streaming bf16 kernel for one row of activations (decoding) against
// at::linear in float32 on the same bf16 values, on shapes with row and column remainders.
#include "core/linear.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

using namespace glamm;

namespace {

void expect_matches_float_reference(int64_t in, int64_t out, bool bias) {
    torch::manual_seed(in * 1000 + out);
    torch::nn::Linear layer(torch::nn::LinearOptions(in, out).bias(bias));
    torch::NoGradGuard no_grad;
    layer->to(torch::kBFloat16);
    const at::Tensor x   = torch::randn({1, 1, in}).to(torch::kBFloat16);
    const at::Tensor got = linear_forward(*layer, x); // [1, 1, out] bf16
    ASSERT_EQ(got.sizes(), (std::vector<int64_t>{1, 1, out}));
    ASSERT_EQ(got.scalar_type(), torch::kBFloat16);
    // The exact sum of the same bf16 products, rounded once to bf16, is what both the kernel and
    // at::linear approximate; they may differ in summation order only.
    const at::Tensor ref = at::linear(x.to(torch::kFloat), layer->weight.to(torch::kFloat),
                                      bias ? layer->bias.to(torch::kFloat) : at::Tensor());
    const double scale   = ref.abs().max().item<double>();
    const double diff    = (got.to(torch::kFloat) - ref).abs().max().item<double>();
    std::printf("in %lld out %lld bias %d: kernel %s, max|diff| %.3g of max|y| %.3g\n",
                static_cast<long long>(in), static_cast<long long>(out), bias,
                streaming_gemv_applies(x, layer->weight) ? "streaming" : "at::linear", diff, scale);
    EXPECT_LE(diff, scale / 128); // two bf16 roundings (2^-8 each) at most
    // Several rows always go to at::linear, with the same numbers.
    const at::Tensor rows = torch::cat({x, x}, 1);
    EXPECT_FALSE(streaming_gemv_applies(rows, layer->weight));
    EXPECT_TRUE(torch::allclose(linear_forward(*layer, rows).to(torch::kFloat)[0][1],
                                got.to(torch::kFloat)[0][0], 0, scale / 64));
}

} // namespace

TEST(Linear, StreamingKernelMatchesTheFloatProduct) {
    expect_matches_float_reference(4096, 256, false); // LLaMA-7B width, whole vectors
    expect_matches_float_reference(100, 37, true);    // remainders: 100 = 3*32 + 4, 37 = 9*4 + 1
    expect_matches_float_reference(31, 5, false);     // shorter than one vector
}

TEST(Linear, OtherDtypesAndGradientsUseAtLinear) {
    torch::nn::Linear layer(64, 8);
    const at::Tensor x = torch::randn({1, 64});
    EXPECT_FALSE(streaming_gemv_applies(x, layer->weight)); // float32
    EXPECT_TRUE(torch::equal(linear_forward(*layer, x), layer->forward(x)));
    layer->to(torch::kBFloat16);
    const at::Tensor xb = x.to(torch::kBFloat16).requires_grad_();
    EXPECT_FALSE(streaming_gemv_applies(xb, layer->weight)); // autograd needs at::linear
}
