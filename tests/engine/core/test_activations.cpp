// glamm::gelu: at::gelu's values, and a correct gradient where LibTorch 1.13's own gelu_backward
// is wrong (an incoming gradient with channels-last strides, as a permute after the GELU gives).
#include "core/activations.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>

namespace {

// d/dx [x Φ(x)] = Φ(x) + x φ(x), the exact GELU's derivative.
at::Tensor gelu_derivative(const at::Tensor& x) {
    const at::Tensor cdf = 0.5 * (1 + torch::erf(x * M_SQRT1_2));
    const at::Tensor pdf = torch::exp(-0.5 * x * x) / std::sqrt(2 * M_PI);
    return cdf + x * pdf;
}

} // namespace

TEST(Gelu, ValuesEqualAtGelu) {
    torch::manual_seed(0);
    const at::Tensor x = torch::randn({4, 8, 5, 5}) * 3;
    EXPECT_TRUE(torch::equal(glamm::gelu(x), at::gelu(x)));
}

// y = gelu(x) [N, C, H, W]; z = Σ (y permuted to [N, H, W, C]) @ W. dz/dx = gelu'(x) * (Σ_j W[c,
// j]) per channel c. The gradient reaching the GELU is the permute's: channels-last strides.
TEST(Gelu, GradientThroughPermuteIsTheDerivative) {
    torch::manual_seed(1);
    const at::Tensor x = torch::randn({2, 16, 8, 8}, torch::requires_grad());
    const at::Tensor w = torch::randn({16, 32});
    torch::matmul(glamm::gelu(x).permute({0, 2, 3, 1}), w).sum().backward();
    const at::Tensor expected = gelu_derivative(x.detach()) * w.sum(1).view({1, 16, 1, 1});
    const double diff         = (x.grad() - expected).abs().max().item<double>();
    std::printf("max |grad - analytic| = %.3g (at::gelu's own backward is off by up to ~1e32 "
                "here in LibTorch 1.13)\n",
                diff);
    EXPECT_LT(diff, 1e-4);
}
