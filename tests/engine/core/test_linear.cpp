// linear_forward: the streaming bf16 kernel for one row of activations (decoding) against
// at::linear in float32 on the same bf16 values, on shapes with row and column remainders; int8
// weights (Int8Weight): the rounding worked by hand, and each kernel against the dequantized
// product.
#include "core/linear.h"
#include "support/test_support.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <limits>

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

// ---------------------------------------------------------------------------------------------
// Int8Weight: symmetric int8 rows with one scale each, and the kernels that stream them.

namespace {

// One row of x through the int8 kernel named `kernel` against the f32 product with the
// dequantized weight (the same numbers summed in another order), for x in f32 and in bf16.
void expect_int8_matches_dequantized(const char* kernel, int64_t in, int64_t out, bool bias) {
    test::ScopedEnv choice("GLAMM_INT8_KERNEL", kernel); // read on every call
    torch::manual_seed(in * 7 + out);
    const at::Tensor w = torch::randn({out, in});
    const at::Tensor b = bias ? torch::randn({out}) : at::Tensor();
    const Int8Weight q = Int8Weight::quantize(w);
    for (const auto dtype : {torch::kFloat, torch::kBFloat16}) {
        const at::Tensor x   = torch::randn({1, 1, in}).to(dtype);
        const at::Tensor got = linear_forward(x, q, b); // [1, 1, out] in x's dtype
        ASSERT_EQ(got.sizes(), (std::vector<int64_t>{1, 1, out}));
        ASSERT_EQ(got.scalar_type(), dtype);
        const at::Tensor ref = at::linear(x.to(torch::kFloat), q.dequantize(torch::kFloat), b);
        const double scale   = ref.abs().max().item<double>();
        const double diff    = (got.to(torch::kFloat) - ref).abs().max().item<double>();
        std::printf("%s in %lld out %lld x %s: max|diff| %.3g of max|y| %.3g\n",
                    int8_gemv_kernel().c_str(), static_cast<long long>(in),
                    static_cast<long long>(out), c10::toString(dtype), diff, scale);
        // f32: summation order only; bf16: the result's rounding, and in the dequantized
        // product (kernel none) also the weight's (2^-8 each at most).
        EXPECT_LE(diff, dtype == torch::kFloat ? scale * 1e-5 : scale / 128);
    }
}

} // namespace

TEST(Int8Weight, RoundsEachRowToNearestEvenStepsOfItsLargestMagnitudeOver127) {
    // Row 0: largest magnitude 127, so the step is 1 and the codes are the values rounded half
    // to even; row 1: all zeros (scale 0, codes 0); row 2: step 0.5, -127 at its minimum.
    const at::Tensor w = torch::tensor({{127.0F, -63.5F, 0.5F, 1.5F, -2.5F},
                                        {0.0F, 0.0F, 0.0F, 0.0F, 0.0F},
                                        {-63.5F, 0.25F, 0.75F, 10.0F, 31.75F}});
    const Int8Weight q = Int8Weight::quantize(w);
    EXPECT_EQ(q.values.scalar_type(), torch::kChar);
    EXPECT_TRUE(torch::equal(q.scales, torch::tensor({1.0F, 0.0F, 0.5F})));
    EXPECT_TRUE(torch::equal(
        q.values.to(torch::kInt),
        torch::tensor({{127, -64, 0, 2, -2}, {0, 0, 0, 0, 0}, {-127, 0, 2, 20, 64}}, torch::kInt)));
    EXPECT_EQ(q.bytes(), 15 + 3 * 4);
    // Every element of a random weight is within half a step of its row's code (and the f32
    // roundings of the division and of the product, ~127 · 2^-24 of a step).
    torch::manual_seed(5);
    const at::Tensor r  = torch::randn({64, 300}) * torch::rand({64, 1}) * 10;
    const Int8Weight qr = Int8Weight::quantize(r.to(torch::kBFloat16));
    const at::Tensor err =
        (qr.dequantize(torch::kFloat) - r.to(torch::kBFloat16).to(torch::kFloat)).abs();
    EXPECT_TRUE((err <= qr.scales.unsqueeze(1) * (0.5 + 1e-4)).all().item<bool>());
    EXPECT_EQ(qr.values.to(torch::kInt).abs().amax(1).min().item<int>(), 127);
}

TEST(Int8Weight, RefusesWeightsThatAreNotFiniteOrNotMatrices) {
    at::Tensor w = torch::ones({3, 4});
    w[1][2]      = std::numeric_limits<float>::infinity();
    EXPECT_THROW(Int8Weight::quantize(w), std::exception);
    w[1][2] = std::numeric_limits<float>::quiet_NaN();
    EXPECT_THROW(Int8Weight::quantize(w.to(torch::kBFloat16)), std::exception);
    EXPECT_THROW(Int8Weight::quantize(torch::ones({4})), std::exception);
    EXPECT_THROW(Int8Weight::quantize(torch::ones({2, 2}, torch::kInt)), std::exception);
    const Int8Weight q = Int8Weight::quantize(torch::ones({3, 4}));
    EXPECT_THROW(linear_forward(torch::ones({1, 5}), q), std::exception); // width 5, not 4
}

TEST(Int8Weight, KernelsMatchTheDequantizedProduct) {
    for (const char* kernel : {"avx512", "avx2", "none"}) {
        expect_int8_matches_dequantized(kernel, 4096, 256, false); // LLaMA-7B width
        expect_int8_matches_dequantized(kernel, 100, 37, true);    // 100 = 6*16 + 4, 37 = 9*4 + 1
        expect_int8_matches_dequantized(kernel, 7, 5, false);      // shorter than one vector
    }
    test::ScopedEnv none("GLAMM_INT8_KERNEL", "none");
    EXPECT_EQ(int8_gemv_kernel(), "none");
}

TEST(Int8Weight, SeveralRowsMultiplyByTheDequantizedWeight) {
    torch::manual_seed(11);
    // Widths with and without a tail past whole vectors; the larger weight again after the
    // smaller (the dequantized weight's buffer is reused between calls).
    const Int8Weight large = Int8Weight::quantize(torch::randn({48, 83}));
    const Int8Weight small = Int8Weight::quantize(torch::randn({16, 32}));
    for (const Int8Weight* q : {&large, &small, &large}) {
        const int64_t in = q->values.size(1);
        for (const auto dtype : {torch::kFloat, torch::kBFloat16}) {
            const at::Tensor x   = torch::randn({1, 3, in}).to(dtype);
            const at::Tensor all = linear_forward(x, *q); // [1, 3, O]
            // The same weights as dequantize() gives, rounded the same way: the same product.
            EXPECT_TRUE(torch::equal(all, at::linear(x, q->dequantize(dtype))));
            // Row by row (the kernel, f32 products of the unrounded weights): within summation
            // order, and for bf16 the rounding of the weights and of the results.
            const double tolerance = dtype == torch::kFloat ? 1e-5 : 0.05;
            for (int64_t t = 0; t < 3; ++t)
                EXPECT_TRUE(torch::allclose(linear_forward(x.narrow(1, t, 1), *q).to(torch::kFloat),
                                            all.narrow(1, t, 1).to(torch::kFloat), tolerance,
                                            tolerance));
        }
    }
}

TEST(Int8Weight, QuantizingALayerFreesItsWeightAndKeepsItsBias) {
    torch::manual_seed(3);
    torch::nn::Linear layer(torch::nn::LinearOptions(40, 24).bias(true));
    const at::Tensor x      = torch::randn({1, 40});
    const at::Tensor before = layer->forward(x).detach();
    const Int8Weight q      = quantize_int8(*layer);
    EXPECT_EQ(layer->weight.sizes(), (std::vector<int64_t>{0, 40}));
    EXPECT_EQ(layer->named_parameters()["weight"].numel(), 0); // the module's list shares it
    const at::Tensor after = linear_forward(*layer, q, x);
    // Each weight moved by at most half a step: |Δy| ≤ Σ_i |x_i| · step / 2 per row.
    const at::Tensor bound = x.abs().sum() * q.scales / 2;
    EXPECT_TRUE(((after - before).abs()[0] <= bound * (1 + 1e-5)).all().item<bool>());
    EXPECT_GT((after - before).abs().max().item<double>(), 0); // quantized, not the float weight
}
