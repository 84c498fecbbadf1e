// Golden parity of the language model on the tiny GLaMM: teacher-forced hidden states and logits,
// embedding assembly, the [SEG] rule, greedy decoding and KV-cache consistency.
// Legend: S expanded sequence, P image embeddings, H hidden size, V vocabulary.
#include "core/checkpoint.h"
#include "core/config.h"
#include "core/device.h"
#include "language/generation.h"
#include "language/llama.h"
#include "support/test_support.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <fstream>
#include <map>
#include <numeric>
#include <string>

namespace glamm {
namespace {

// The golden greedy run stopped after at most this many new tokens (tiny/README).
constexpr int64_t kGoldenMaxNewTokens = 12;
// logits_tail holds the logits of this many last positions.
constexpr int64_t kGoldenLogitsTail = 32;

nlohmann::json read_json(const std::string& path) {
    std::ifstream in(path);
    EXPECT_TRUE(in.good()) << path;
    return nlohmann::json::parse(in);
}

std::vector<int64_t> to_vector(const at::Tensor& ids) {
    const at::Tensor flat = ids.to(at::kLong).contiguous();
    return {flat.data_ptr<int64_t>(), flat.data_ptr<int64_t>() + flat.numel()};
}

class LlamaGolden : public ::testing::TestWithParam<std::string> {
protected:
    static void SetUpTestSuite() {
        const std::string dir = test::tiny_model_dir();
        checkpoint_           = std::make_unique<Checkpoint>(Checkpoint::open(dir));
        config_               = resolve_llama_config(load_glamm_config(dir).llama, *checkpoint_);
        llama_                = std::make_unique<LlamaForCausalLM>(config_);
        LoadReport report(*checkpoint_);
        load_llama(*llama_, report);
        for (const char* other : {"model.mm_projector.", "model.region_encoder.",
                                  "model.grounding_encoder.", "model.text_hidden_fcs."})
            report.ignore(other);
        report.finish("tiny LLaMA");
        (*llama_)->eval();
        const auto added = read_json(dir + "/added_tokens.json");
        bbox_token_id_   = added.at("<bbox>").get<int64_t>();
        seg_token_id_    = added.at("[SEG]").get<int64_t>();
        meta_            = read_json(test::tiny_case_path("meta.json"));
    }
    static void TearDownTestSuite() {
        llama_.reset();
        checkpoint_.reset();
    }

    std::map<std::string, at::Tensor> golden() const {
        return test::load_tensors(test::tiny_case_path(GetParam() + ".safetensors"));
    }
    static at::Tensor region_features(const std::map<std::string, at::Tensor>& g) {
        auto it = g.find("region_features");
        return it == g.end() ? at::Tensor() : it->second;
    }
    // Expanded prompt length: prompt_ids with the image slot standing for P rows.
    static int64_t expanded_length(const at::Tensor& ids, int64_t num_image) {
        return ids.numel() - 1 + num_image;
    }

    static std::unique_ptr<Checkpoint> checkpoint_;
    static LlamaConfig config_;
    static std::unique_ptr<LlamaForCausalLM> llama_;
    static int64_t bbox_token_id_, seg_token_id_;
    static nlohmann::json meta_;
};
std::unique_ptr<Checkpoint> LlamaGolden::checkpoint_;
LlamaConfig LlamaGolden::config_;
std::unique_ptr<LlamaForCausalLM> LlamaGolden::llama_;
int64_t LlamaGolden::bbox_token_id_ = -1;
int64_t LlamaGolden::seg_token_id_  = -1;
nlohmann::json LlamaGolden::meta_;

TEST_P(LlamaGolden, TeacherForcedHiddenAndLogits) {
    torch::NoGradGuard no_grad;
    auto g                  = golden();
    LlamaForCausalLM& llama = *llama_;
    const at::Tensor hidden = llama->forward(g.at("inputs_embeds")); // [1, S, H]
    EXPECT_TRUE(test::close_to_reference("last_hidden_state", hidden, g.at("last_hidden_state")));
    const int64_t seq = hidden.size(1);
    const at::Tensor tail =
        llama->logits(hidden.narrow(1, seq - kGoldenLogitsTail, kGoldenLogitsTail));
    EXPECT_TRUE(test::close_to_reference("logits_tail", tail, g.at("logits_tail")));
}

TEST_P(LlamaGolden, AssembledEmbeddingsMatch) {
    torch::NoGradGuard no_grad;
    auto g = golden();
    const at::Tensor embeds =
        assemble_embeddings(*llama_, g.at("input_ids"), g.at("projected_image_features")[0],
                            region_features(g), kImageTokenIndex, bbox_token_id_);
    EXPECT_TRUE(test::close_to_reference("inputs_embeds", embeds, g.at("inputs_embeds")));
}

TEST_P(LlamaGolden, SegRuleSelectsStateBeforeEachSeg) {
    auto g                  = golden();
    const auto ids          = to_vector(g.at("input_ids"));
    const int64_t num_image = g.at("projected_image_features").size(1);
    const auto positions    = seg_hidden_positions(ids, seg_token_id_, kImageTokenIndex, num_image);
    // meta.json gives [SEG] indices in input_ids; the image slot (before them) adds P - 1 rows,
    // and the state that produced a token sits one position earlier.
    std::vector<int64_t> expected;
    for (const auto& p : meta_.at("cases").at(GetParam()).at("seg_positions"))
        expected.push_back(p.get<int64_t>() + (num_image - 1) - 1);
    EXPECT_EQ(positions, expected);
    const at::Tensor selected = select_seg_hidden_states(
        g.at("last_hidden_state"), ids, seg_token_id_, kImageTokenIndex, num_image);
    ASSERT_EQ(selected.size(0), static_cast<int64_t>(expected.size()));
    for (size_t k = 0; k < expected.size(); ++k)
        EXPECT_TRUE(selected[k].equal(g.at("last_hidden_state")[0][expected[k]]));
}

TEST_P(LlamaGolden, GreedyDecodingMatches) {
    auto g                      = golden();
    const at::Tensor prompt_ids = g.at("prompt_ids");
    const int64_t num_image     = g.at("projected_image_features").size(1);
    at::Tensor prompt;
    {
        torch::NoGradGuard no_grad;
        prompt = assemble_embeddings(*llama_, prompt_ids, g.at("projected_image_features")[0],
                                     region_features(g), kImageTokenIndex, bbox_token_id_);
    }
    KVCache cache = (*llama_)->make_cache();
    GenerationOptions options;
    options.max_new_tokens = kGoldenMaxNewTokens;
    std::vector<std::pair<int64_t, int64_t>> seen;
    GenerationCallbacks callbacks;
    callbacks.on_token = [&](int64_t id, int64_t index) { seen.emplace_back(id, index); };
    const GenerationResult result = generate(*llama_, prompt, cache, options, callbacks);

    const auto expected = to_vector(g.at("greedy_ids"));
    EXPECT_EQ(result.ids, expected);
    std::printf("  greedy ids (%zu, stopped by %s) %s the reference\n", result.ids.size(),
                to_string(result.stopped_by), result.ids == expected ? "equal" : "DIFFER from");
    const bool ends_with_eos = !expected.empty() && expected.back() == config_.eos_token_id;
    EXPECT_EQ(result.stopped_by, ends_with_eos ? StopReason::kEos : StopReason::kMaxNewTokens);
    ASSERT_EQ(seen.size(), result.ids.size());
    for (size_t i = 0; i < seen.size(); ++i) {
        EXPECT_EQ(seen[i].first, result.ids[i]);
        EXPECT_EQ(seen[i].second, static_cast<int64_t>(i));
    }

    // The prompt is a prefix of the teacher-forced sequence, so its hidden states (and the
    // producer of the first generated token, the prompt's last position) are golden too.
    const int64_t prompt_len = expanded_length(prompt_ids, num_image);
    ASSERT_EQ(result.prompt_hidden_states.size(0), prompt_len);
    const at::Tensor golden_prompt = g.at("last_hidden_state")[0].narrow(0, 0, prompt_len);
    EXPECT_TRUE(test::close_to_reference("prompt_hidden_states", result.prompt_hidden_states,
                                         golden_prompt));
    ASSERT_EQ(result.producer_hidden_states.size(0), static_cast<int64_t>(result.ids.size()));
    EXPECT_TRUE(test::close_to_reference("first_producer_hidden", result.producer_hidden_states[0],
                                         golden_prompt[prompt_len - 1]));
    // The cache holds the prompt and every generated token but the last.
    EXPECT_EQ(cache.length(), prompt_len + static_cast<int64_t>(result.ids.size()) - 1);

    // The producers agree with a cache-free forward over prompt + generated ids.
    torch::NoGradGuard no_grad;
    std::vector<int64_t> full_ids = to_vector(prompt_ids);
    full_ids.insert(full_ids.end(), result.ids.begin(), result.ids.end());
    const at::Tensor full = assemble_embeddings(
        *llama_, at::tensor(full_ids, at::kLong), g.at("projected_image_features")[0],
        region_features(g), kImageTokenIndex, bbox_token_id_);
    const at::Tensor reference = (*llama_)->forward(full)[0]; // [S + N, H]
    const at::Tensor sequence  = result.sequence_hidden_states();
    ASSERT_EQ(sequence.size(0), reference.size(0) - 1);
    const double diff = test::max_abs_diff(sequence, reference.narrow(0, 0, sequence.size(0)));
    std::printf("  cached decode vs full forward  max|diff| %.3e\n", diff);
    EXPECT_LE(diff, 1e-4);
}

TEST_P(LlamaGolden, FixedShapeDecodingMatches) {
    // The step a CUDA graph records, run eagerly: the golden ids and the growing cache's states.
    auto g = golden();
    at::Tensor prompt;
    {
        torch::NoGradGuard no_grad;
        prompt =
            assemble_embeddings(*llama_, g.at("prompt_ids"), g.at("projected_image_features")[0],
                                region_features(g), kImageTokenIndex, bbox_token_id_);
    }
    GenerationOptions options;
    options.max_new_tokens = kGoldenMaxNewTokens;
    KVCache eager_cache    = (*llama_)->make_cache();
    const auto eager       = generate(*llama_, prompt, eager_cache, options);
    options.decode_mode    = DecodeMode::kStatic;
    KVCache cache          = (*llama_)->make_cache();
    const auto fixed       = generate(*llama_, prompt, cache, options);
    EXPECT_EQ(fixed.decode_mode, DecodeMode::kStatic);
    EXPECT_EQ(fixed.ids, to_vector(g.at("greedy_ids")));
    EXPECT_EQ(cache.length(), eager_cache.length());
    ASSERT_EQ(fixed.producer_hidden_states.sizes(), eager.producer_hidden_states.sizes());
    const double diff =
        test::max_abs_diff(fixed.producer_hidden_states, eager.producer_hidden_states);
    std::printf("  fixed-shape vs growing-cache decode  max|diff| %.3e\n", diff);
    EXPECT_LE(diff, 1e-5);
}

TEST_P(LlamaGolden, KvCacheMatchesSinglePass) {
    torch::NoGradGuard no_grad;
    auto g                  = golden();
    LlamaForCausalLM& llama = *llama_;
    const at::Tensor embeds = g.at("inputs_embeds"); // [1, S, H]
    const int64_t seq       = embeds.size(1);
    const int64_t prompt_len =
        expanded_length(g.at("prompt_ids"), g.at("projected_image_features").size(1));

    // (a) one pass without a cache.
    const at::Tensor single = llama->forward(embeds)[0]; // [S, H]

    // (b) prefill of the prompt, then one position at a time.
    KVCache cache = llama->make_cache();
    std::vector<at::Tensor> stepwise{llama->forward(embeds.narrow(1, 0, prompt_len), &cache, 0)[0]};
    for (int64_t pos = prompt_len; pos < seq; ++pos)
        stepwise.push_back(llama->forward(embeds.narrow(1, pos, 1), &cache, cache.length())[0]);
    EXPECT_EQ(cache.length(), seq);
    const double diff_b = test::max_abs_diff(at::cat(stepwise), single);

    // (c) two chunks, into a cache reused after reset() (buffers kept).
    cache.reset();
    const int64_t split = seq / 2;
    const at::Tensor chunked =
        at::cat({llama->forward(embeds.narrow(1, 0, split), &cache, 0)[0],
                 llama->forward(embeds.narrow(1, split, seq - split), &cache, split)[0]});
    const double diff_c = test::max_abs_diff(chunked, single);

    // (d) truncate() to the prompt and re-decode the answer in one chunk (multi-turn reuse).
    cache.truncate(prompt_len);
    const at::Tensor resumed =
        llama->forward(embeds.narrow(1, prompt_len, seq - prompt_len), &cache, prompt_len)[0];
    const double diff_d =
        test::max_abs_diff(resumed, single.narrow(0, prompt_len, seq - prompt_len));

    std::printf("  kv-cache vs single pass: step-wise %.3e, two chunks %.3e, truncate+resume "
                "%.3e\n",
                diff_b, diff_c, diff_d);
    EXPECT_LE(diff_b, 1e-4);
    EXPECT_LE(diff_c, 1e-4);
    EXPECT_LE(diff_d, 1e-4);
    EXPECT_TRUE(
        test::close_to_reference("single_pass_hidden", single, g.at("last_hidden_state")[0]));
}

INSTANTIATE_TEST_SUITE_P(Cases, LlamaGolden, ::testing::Values("gcg", "region"));

// GlammModel::load builds the decoder layers one at a time and loads each as soon as it is built
// (the load's memory peak): the same model as one loaded whole, every key read once, and with
// sharing on, each layer's weights view the mapped file.
TEST(LlamaLoad, LayerByLayerAsBuiltEqualsLoadedWhole) {
    torch::NoGradGuard no_grad;
    const std::string dir       = test::tiny_model_dir();
    const Checkpoint checkpoint = Checkpoint::open(dir);
    const LlamaConfig config    = resolve_llama_config(load_glamm_config(dir).llama, checkpoint);
    ASSERT_GE(config.num_hidden_layers, 2);
    // Built in the stored dtype (bf16), as GlammModel::load builds for --dtype bf16: sharing
    // applies to tensors stored in the module's dtype.
    ASSERT_EQ(checkpoint.tensor("model.layers.0.self_attn.q_proj.weight").scalar_type(),
              at::kBFloat16);
    DefaultDtypeGuard dtype_guard(at::kBFloat16);

    LoadReport whole_report(checkpoint);
    LlamaForCausalLM whole(config);
    load_llama(whole, whole_report);

    LoadReport report(checkpoint);
    report.share_stored_tensors(true);
    std::vector<int64_t> order;
    LlamaForCausalLM by_layer(config, [&](int64_t index, LlamaDecoderLayerImpl& layer) {
        order.push_back(index);
        load_llama_layer(index, layer, report);
    });
    load_llama(by_layer, report, /*layers_loaded=*/true);
    for (const char* other : {"model.mm_projector.", "model.region_encoder.",
                              "model.grounding_encoder.", "model.text_hidden_fcs."})
        report.ignore(other);
    EXPECT_NO_THROW(report.finish("tiny LLaMA, layer by layer"));
    EXPECT_EQ(report.loaded_bytes(), whole_report.loaded_bytes()); // no key read twice

    std::vector<int64_t> expected(static_cast<size_t>(config.num_hidden_layers));
    std::iota(expected.begin(), expected.end(), 0);
    EXPECT_EQ(order, expected);
    int64_t layer_tensors = 0;
    for (const auto& p : by_layer->named_parameters()) {
        if (p.key().rfind("model.layers.", 0) != 0) continue;
        ++layer_tensors;
        EXPECT_EQ(p.value().data_ptr(), checkpoint.tensor(p.key()).data_ptr())
            << p.key() << " is a copy";
    }
    EXPECT_EQ(layer_tensors, config.num_hidden_layers * 9); // 7 linears, 2 norms

    by_layer->eval();
    whole->eval();
    const at::Tensor embeds =
        at::randn({1, 9, config.hidden_size}, at::TensorOptions().dtype(by_layer->dtype()));
    EXPECT_TRUE(at::equal(by_layer->forward(embeds), whole->forward(embeds)));
}

} // namespace
} // namespace glamm
