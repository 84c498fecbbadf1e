// Fixed-shape decoding steps, eager or replayed from a CUDA graph (see the header).
// Legend: H hidden size, N cache capacity.
#include "language/static_decoder.h"

#include "core/error.h"

#include <ATen/ATen.h>

namespace glamm {

StaticDecoder::StaticDecoder(LlamaForCausalLM llama, KVCache& cache, bool use_graph)
    : llama_(std::move(llama)), cache_(cache), use_graph_(use_graph) {
    const at::Tensor& weight  = llama_->model->norm->weight;
    const int64_t hidden_size = llama_->config().hidden_size;
    if (use_graph_ && !weight.is_cuda())
        fail("StaticDecoder: CUDA graphs need the model on a GPU, it is on ", weight.device());
    if (use_graph_ && !CudaGraph::supported())
        fail("StaticDecoder: this build has no CUDA graphs (a CPU-only LibTorch)");
    embeds_ = at::zeros({1, 1, hidden_size}, weight.options());
    if (!cache_.allocated_like(embeds_) || cache_.length() == 0)
        fail("StaticDecoder: the cache must hold the prompt, in ", weight.scalar_type(), " on ",
             weight.device());
    tables_   = llama_->model->rotary(0, cache_.capacity(), weight.options());
    position_ = at::zeros({1}, weight.options().dtype(at::kLong));
    hidden_   = at::zeros({1, 1, hidden_size}, weight.options());
}

void StaticDecoder::run() {
    hidden_.copy_(llama_->model->forward_step(embeds_, position_, tables_, cache_));
}

at::Tensor StaticDecoder::step(const at::Tensor& embeds) {
    const int64_t position = cache_.length();
    if (position >= cache_.capacity())
        fail("StaticDecoder::step: the cache is full (", cache_.capacity(), " positions)");
    if (embeds.sizes() != embeds_.sizes())
        fail("StaticDecoder::step: embeds must be ", embeds_.sizes(), ", got ", embeds.sizes());
    embeds_.copy_(embeds);
    position_.fill_(position);
    if (!use_graph_) {
        run();
    } else if (!graph_.captured()) {
        graph_.capture(embeds_.device(), [this] { run(); });
    } else {
        graph_.replay();
    }
    cache_.commit(position, 1);
    return hidden_.reshape({-1}).clone(); // [H]
}

} // namespace glamm
