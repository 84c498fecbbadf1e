// Unit tests of the LLaMA modules, the KV cache and the embedding assembly on small random
// models: hand-worked RMSNorm/RoPE values, key names, GQA, causality, cache bookkeeping.
// Legend: T tokens, H hidden size, V vocabulary.
#include "core/checkpoint.h"
#include "core/config.h"
#include "core/device.h"
#include "core/error.h"
#include "language/kv_cache.h"
#include "language/llama.h"
#include "support/test_support.h"

#include <torch/torch.h>

#include <cmath>
#include <set>

namespace glamm {
namespace {

LlamaConfig small_config(int64_t kv_heads = 0) {
    LlamaConfig c;
    c.vocab_size              = 37;
    c.hidden_size             = 16;
    c.intermediate_size       = 24;
    c.num_hidden_layers       = 2;
    c.num_attention_heads     = 4;
    c.num_key_value_heads     = kv_heads;
    c.rms_norm_eps            = 1e-5;
    c.max_position_embeddings = 8; // small on purpose: forwards past it must extend the tables
    return c;
}

// Random but reproducible weights of a moderate scale (RMSNorm weights around 1).
LlamaForCausalLM random_llama(const LlamaConfig& config, uint64_t seed = 7) {
    torch::manual_seed(seed);
    LlamaForCausalLM llama(config);
    torch::NoGradGuard no_grad;
    for (auto& p : llama->named_parameters()) {
        if (p.key().find("norm") != std::string::npos)
            p.value().copy_(1.0 + 0.1 * torch::randn_like(p.value()));
        else
            p.value().copy_(0.2 * torch::randn_like(p.value()));
    }
    llama->eval();
    return llama;
}

TEST(LlamaRMSNorm, HandWorkedValues) {
    LlamaRMSNorm norm(2, 1e-5);
    torch::NoGradGuard no_grad;
    norm->weight.copy_(torch::tensor({2.0f, 0.5f}));
    const auto out     = norm(torch::tensor({{3.0f, 4.0f}}));
    const double scale = 1.0 / std::sqrt((9.0 + 16.0) / 2.0 + 1e-5);
    EXPECT_NEAR(out[0][0].item<double>(), 2.0 * 3.0 * scale, 1e-6);
    EXPECT_NEAR(out[0][1].item<double>(), 0.5 * 4.0 * scale, 1e-6);
}

TEST(LlamaRMSNorm, Bf16CastsTheNormalisedValueBeforeTheWeight) {
    LlamaRMSNorm norm(3, 1e-5);
    torch::NoGradGuard no_grad;
    norm->weight.copy_(torch::tensor({1.5f, -0.75f, 3.0f}));
    norm->to(torch::kBFloat16);
    const auto x   = torch::tensor({{0.3f, -1.7f, 2.9f}}).to(torch::kBFloat16);
    const auto out = norm(x);
    EXPECT_EQ(out.scalar_type(), torch::kBFloat16);
    const auto x32    = x.to(torch::kFloat);
    const auto normed = (x32 * torch::rsqrt(x32.pow(2).mean(-1, true) + 1e-5)).to(torch::kBFloat16);
    const auto expected = norm->weight * normed;
    EXPECT_TRUE(out.equal(expected));
}

TEST(RotaryTables, HandWorkedValues) {
    // D = 4, theta = 100: inv_freq = [1, 100^(-1/2)] = [1, 0.1]; tables repeat them twice.
    const auto tables = rotary_tables(4, 100.0, 5);
    ASSERT_EQ(tables.cos.sizes(), (at::IntArrayRef{5, 4}));
    EXPECT_TRUE(tables.cos[0].equal(torch::ones({4})));
    EXPECT_TRUE(tables.sin[0].equal(torch::zeros({4})));
    const double expected_cos[4] = {std::cos(3.0), std::cos(0.3), std::cos(3.0), std::cos(0.3)};
    const double expected_sin[4] = {std::sin(3.0), std::sin(0.3), std::sin(3.0), std::sin(0.3)};
    for (int j = 0; j < 4; ++j) {
        EXPECT_NEAR(tables.cos[3][j].item<double>(), expected_cos[j], 1e-6);
        EXPECT_NEAR(tables.sin[3][j].item<double>(), expected_sin[j], 1e-6);
    }
}

TEST(LlamaForCausalLM, ParameterNamesAreCheckpointKeys) {
    LlamaForCausalLM llama(small_config());
    std::set<std::string> names;
    for (const auto& p : llama->named_parameters()) names.insert(p.key());
    std::set<std::string> expected{"model.embed_tokens.weight", "model.norm.weight",
                                   "lm_head.weight"};
    for (int i = 0; i < 2; ++i) {
        const std::string layer = "model.layers." + std::to_string(i) + ".";
        for (const char* name :
             {"input_layernorm.weight", "post_attention_layernorm.weight",
              "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
              "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
              "mlp.down_proj.weight"})
            expected.insert(layer + name);
    }
    EXPECT_EQ(names, expected);
    EXPECT_TRUE(llama->named_buffers().is_empty()); // no rotary_emb.inv_freq buffer
}

TEST(LlamaForCausalLM, TiedEmbeddingsHaveNoLmHead) {
    LlamaConfig config         = small_config();
    config.tie_word_embeddings = true;
    LlamaForCausalLM llama     = random_llama(config);
    for (const auto& p : llama->named_parameters())
        EXPECT_EQ(p.key().find("lm_head"), std::string::npos);
    torch::NoGradGuard no_grad;
    const auto hidden = torch::randn({3, config.hidden_size});
    EXPECT_LT(test::max_abs_diff(llama->logits(hidden),
                                 hidden.matmul(llama->model->embed_tokens->weight.t())),
              1e-5);
}

TEST(LlamaForCausalLM, LaterTokensDoNotChangeEarlierStates) {
    auto llama = random_llama(small_config());
    torch::NoGradGuard no_grad;
    auto embeds       = torch::randn({1, 6, 16});
    const auto before = llama->forward(embeds);
    embeds[0][5]      = torch::randn({16});
    const auto after  = llama->forward(embeds);
    EXPECT_TRUE(after.narrow(1, 0, 5).equal(before.narrow(1, 0, 5)));
    EXPECT_GT(test::max_abs_diff(after[0][5], before[0][5]), 1e-3);
}

TEST(LlamaForCausalLM, RopeDependsOnlyOnRelativePositions) {
    // Without a cache, shifting every position by the same offset leaves attention unchanged;
    // the offset also runs past max_position_embeddings (tables extended on demand).
    auto llama = random_llama(small_config());
    torch::NoGradGuard no_grad;
    const auto embeds  = torch::randn({1, 5, 16});
    const auto at_zero = llama->forward(embeds, nullptr, 0);
    const auto shifted = llama->forward(embeds, nullptr, 11);
    EXPECT_LT(test::max_abs_diff(at_zero, shifted), 1e-5);
}

TEST(LlamaForCausalLM, GroupedQueryAttentionEqualsRepeatedHeads) {
    // kv_heads = 2 for 4 query heads: query head h reads kv head h / 2. The same model with the
    // key/value projections tiled to 4 heads must compute the same thing.
    const LlamaConfig gqa_config = small_config(2);
    auto gqa                     = random_llama(gqa_config);
    auto full                    = random_llama(small_config(4), 99);
    torch::NoGradGuard no_grad;
    auto gqa_params        = gqa->named_parameters();
    auto full_params       = full->named_parameters();
    const int64_t head_dim = gqa_config.head_dim();
    for (const auto& p : gqa_params) {
        at::Tensor target = full_params[p.key()];
        const bool kv     = p.key().find("k_proj") != std::string::npos ||
                        p.key().find("v_proj") != std::string::npos;
        if (!kv) {
            target.copy_(p.value());
            continue;
        }
        for (int64_t h = 0; h < 4; ++h)
            target.narrow(0, h * head_dim, head_dim)
                .copy_(p.value().narrow(0, (h / 2) * head_dim, head_dim));
    }
    const auto embeds = torch::randn({1, 7, 16});
    EXPECT_LT(test::max_abs_diff(gqa->forward(embeds), full->forward(embeds)), 1e-5);
    // And through the cache (kv_heads-shaped buffers).
    KVCache cache = gqa->make_cache();
    EXPECT_EQ(cache.kv_heads(), 2);
    const auto first  = gqa->forward(embeds.narrow(1, 0, 4), &cache, 0);
    const auto second = gqa->forward(embeds.narrow(1, 4, 3), &cache, 4);
    EXPECT_LT(test::max_abs_diff(torch::cat({first, second}, 1), full->forward(embeds)), 1e-5);
}

TEST(LlamaForCausalLM, MergedProjectionsChangeNothing) {
    // q/k/v and gate/up as one product each (what a GPU model does): the same states, through
    // the cache too, with the parameters now views of the merged tensors under the same names.
    auto llama        = random_llama(small_config(2));
    const auto embeds = torch::randn({1, 7, 16});
    torch::NoGradGuard no_grad;
    const auto before = llama->forward(embeds);
    std::set<std::string> names;
    for (const auto& p : llama->named_parameters()) names.insert(p.key());
    llama->merge_projections();
    llama->merge_projections(); // idempotent
    std::set<std::string> after_names;
    for (const auto& p : llama->named_parameters()) after_names.insert(p.key());
    EXPECT_EQ(after_names, names);
    auto* layer = llama->model->layers[0]->as<LlamaDecoderLayer>();
    ASSERT_TRUE(layer->self_attn->qkv_weight.defined());
    EXPECT_EQ(layer->self_attn->qkv_weight.sizes(), (at::IntArrayRef{(4 + 2 * 2) * 4, 16}));
    EXPECT_EQ(layer->self_attn->k_proj->weight.data_ptr(),
              layer->self_attn->qkv_weight[4 * 4].data_ptr()); // a view, no copy
    EXPECT_EQ(layer->mlp->up_proj->weight.data_ptr(),
              layer->mlp->gate_up_weight[layer->mlp->gate_proj->weight.size(0)].data_ptr());
    EXPECT_LT(test::max_abs_diff(llama->forward(embeds), before), 1e-6);
    KVCache cache     = llama->make_cache();
    const auto first  = llama->forward(embeds.narrow(1, 0, 4), &cache, 0);
    const auto second = llama->forward(embeds.narrow(1, 4, 3), &cache, 4);
    EXPECT_LT(test::max_abs_diff(torch::cat({first, second}, 1), before), 1e-5);
    // The GPU forms (one rounding in RoPE and RMSNorm, fused attention) emulated on the CPU.
    emulate_gpu_kernels_on_cpu(true);
    const auto emulated = llama->forward(embeds);
    emulate_gpu_kernels_on_cpu(false);
    EXPECT_LT(test::max_abs_diff(emulated, before), 1e-5);
}

TEST(LlamaForCausalLM, Bf16ForwardStaysCloseToF32) {
    auto llama = random_llama(small_config());
    torch::NoGradGuard no_grad;
    const auto embeds = torch::randn({1, 6, 16});
    const auto f32    = llama->forward(embeds);
    llama->to(torch::kBFloat16);
    EXPECT_EQ(llama->dtype(), torch::kBFloat16);
    KVCache cache   = llama->make_cache();
    const auto bf16 = llama->forward(embeds, &cache, 0); // input cast to the model dtype
    EXPECT_EQ(bf16.scalar_type(), torch::kBFloat16);
    EXPECT_EQ(llama->logits(bf16).scalar_type(), torch::kBFloat16);
    EXPECT_LT(test::max_abs_diff(bf16, f32), 0.1);
}

TEST(KVCache, GrowsKeepsContentAndTruncates) {
    KVCache cache(1, 2, 3);
    const auto k1 = torch::randn({1, 2, 3, 3}), v1 = torch::randn({1, 2, 3, 3});
    auto [keys, values] = cache.write(0, 0, k1, v1);
    cache.commit(0, 3);
    EXPECT_EQ(cache.capacity(), 3);
    EXPECT_TRUE(keys.equal(k1));
    const auto k2 = torch::randn({1, 2, 1, 3}), v2 = torch::randn({1, 2, 1, 3});
    std::tie(keys, values) = cache.write(0, 3, k2, v2);
    cache.commit(3, 1);
    EXPECT_EQ(cache.capacity(), 6); // doubled, content kept
    EXPECT_TRUE(keys.equal(torch::cat({k1, k2}, 2)));
    EXPECT_TRUE(values.equal(torch::cat({v1, v2}, 2)));

    cache.reserve(20);
    EXPECT_EQ(cache.capacity(), 20);
    EXPECT_EQ(cache.length(), 4);
    // After reserve(), writes land in the same storage (no per-step reallocation).
    const auto k3       = torch::randn({1, 2, 1, 3});
    const void* storage = cache.write(0, 4, k3, k3).first.data_ptr();
    cache.commit(4, 1);
    EXPECT_EQ(cache.write(0, 5, k3, k3).first.data_ptr(), storage);
    cache.commit(5, 1);

    cache.truncate(2);
    EXPECT_EQ(cache.length(), 2);
    EXPECT_THROW(cache.truncate(3), Error);
    EXPECT_THROW(cache.write(0, 3, k2, v2), Error); // must start at length()
    cache.reset();
    EXPECT_EQ(cache.length(), 0);
    EXPECT_EQ(cache.capacity(), 20);
    EXPECT_THROW(cache.write(0, 0, torch::randn({1, 3, 1, 3}), torch::randn({1, 3, 1, 3})),
                 Error); // wrong head count
}

TEST(KVCache, WriteAtStoresAtADevicePosition) {
    KVCache cache(1, 2, 3, 4);
    const auto keys = torch::arange(6, torch::kFloat).reshape({1, 2, 1, 3});
    EXPECT_THROW(cache.write_at(0, torch::tensor({1}, torch::kLong), keys, keys),
                 Error); // unallocated
    cache.write(0, 0, keys, keys);
    cache.commit(0, 1);
    ASSERT_TRUE(cache.allocated_like(keys));
    EXPECT_FALSE(cache.allocated_like(keys.to(torch::kBFloat16)));
    const auto [k, v] = cache.write_at(0, torch::tensor({2}, torch::kLong), keys + 10, keys + 20);
    EXPECT_EQ(k.sizes(), (at::IntArrayRef{1, 2, 4, 3})); // the whole capacity
    EXPECT_TRUE(k.narrow(2, 0, 1).equal(keys));
    EXPECT_TRUE(k.narrow(2, 1, 1).equal(torch::zeros_like(keys))); // never written: zeros
    EXPECT_TRUE(k.narrow(2, 2, 1).equal(keys + 10));
    EXPECT_TRUE(v.narrow(2, 2, 1).equal(keys + 20));
    EXPECT_EQ(cache.length(), 1); // the caller commits
    EXPECT_THROW(cache.write_at(0, torch::tensor({1}, torch::kLong), keys.repeat({1, 1, 2, 1}),
                                keys.repeat({1, 1, 2, 1})),
                 Error); // one position at a time
}

TEST(KVCache, DtypeChangeNeedsAnEmptyCache) {
    KVCache cache(1, 1, 2);
    const auto k = torch::randn({1, 1, 1, 2});
    cache.write(0, 0, k, k);
    cache.commit(0, 1);
    const auto k16 = k.to(torch::kBFloat16);
    EXPECT_THROW(cache.write(0, 1, k16, k16), Error);
    cache.reset();
    EXPECT_EQ(cache.write(0, 0, k16, k16).first.scalar_type(), torch::kBFloat16);
}

TEST(LlamaForCausalLM, ForwardChecksItsInputs) {
    auto llama    = random_llama(small_config());
    KVCache cache = llama->make_cache();
    torch::NoGradGuard no_grad;
    EXPECT_THROW(llama->forward(torch::randn({1, 3, 15})), Error);
    EXPECT_THROW(llama->forward(torch::randn({1, 3, 16}), &cache, 2), Error); // cache is empty
    KVCache other(3, 4, 4);
    EXPECT_THROW(llama->forward(torch::randn({1, 3, 16}), &other, 0), Error);
    EXPECT_THROW(llama->embed(torch::tensor({0, 37}, torch::kLong)), Error);
    EXPECT_THROW(llama->embed(torch::tensor({-200}, torch::kLong)), Error);
}

TEST(AssembleEmbeddings, SplicesImageAndReplacesBboxRows) {
    auto llama = random_llama(small_config());
    torch::NoGradGuard no_grad;
    const int64_t bbox = 30;
    const auto ids = torch::tensor(std::vector<int64_t>{1, 5, kImageTokenIndex, 6, bbox, 7, bbox});
    const auto image   = torch::randn({3, 16});
    const auto regions = torch::randn({3, 16}); // one more than <bbox> tokens: dropped
    const auto embeds  = assemble_embeddings(llama, ids, image, regions, kImageTokenIndex, bbox);
    ASSERT_EQ(embeds.sizes(), (at::IntArrayRef{1, 7 - 1 + 3, 16}));
    const auto table = llama->model->embed_tokens->weight;
    const auto e     = embeds[0];
    EXPECT_TRUE(e[0].equal(table[1]));
    EXPECT_TRUE(e[1].equal(table[5]));
    EXPECT_TRUE(e.narrow(0, 2, 3).equal(image));
    EXPECT_TRUE(e[5].equal(table[6]));
    EXPECT_TRUE(e[6].equal(regions[0]));
    EXPECT_TRUE(e[7].equal(table[7]));
    EXPECT_TRUE(e[8].equal(regions[1]));

    // Without region features the <bbox> rows keep their text embedding.
    const auto plain = assemble_embeddings(llama, ids, image, at::Tensor(), kImageTokenIndex, bbox);
    EXPECT_TRUE(plain[0][6].equal(table[bbox]));
    // No image slot, no image.
    const auto text = assemble_embeddings(llama, torch::tensor({1, 2}, torch::kLong), at::Tensor(),
                                          at::Tensor(), kImageTokenIndex, bbox);
    EXPECT_EQ(text.sizes(), (at::IntArrayRef{1, 2, 16}));

    EXPECT_THROW(assemble_embeddings(llama, ids, at::Tensor(), regions, kImageTokenIndex, bbox),
                 Error);
    EXPECT_THROW(
        assemble_embeddings(llama, ids, image, regions.narrow(0, 0, 1), kImageTokenIndex, bbox),
        Error); // two <bbox> tokens, one region
    const auto two_images =
        torch::tensor(std::vector<int64_t>{1, kImageTokenIndex, kImageTokenIndex});
    EXPECT_THROW(
        assemble_embeddings(llama, two_images, image, at::Tensor(), kImageTokenIndex, bbox), Error);
}

TEST(ResolveLlamaConfig, VocabularyFromEmbedTokens) {
    const Checkpoint checkpoint = Checkpoint::open(test::tiny_model_dir());
    LlamaConfig config          = load_glamm_config(test::tiny_model_dir()).llama;
    const int64_t rows          = checkpoint.stored("model.embed_tokens.weight").shape[0];
    config.vocab_size           = 0;
    EXPECT_EQ(resolve_llama_config(config, checkpoint).vocab_size, rows);
    config.vocab_size = rows + 1;
    EXPECT_THROW(resolve_llama_config(config, checkpoint), Error);
}

} // namespace
} // namespace glamm
