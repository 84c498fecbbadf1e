#include "core/activations.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

namespace glamm {

namespace {

struct GeluFunction : torch::autograd::Function<GeluFunction> {
    static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x) {
        ctx->save_for_backward({x});
        return at::gelu(x);
    }
    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grads) {
        const at::Tensor x = ctx->get_saved_variables()[0];
        return {at::gelu_backward(grads[0].contiguous(), x.contiguous())};
    }
};

} // namespace

at::Tensor gelu(const at::Tensor& x) {
    if (!at::GradMode::is_enabled() || !x.requires_grad()) return at::gelu(x);
    return GeluFunction::apply(x);
}

} // namespace glamm
