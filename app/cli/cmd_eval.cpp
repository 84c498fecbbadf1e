// glamm eval: GLaMM's benchmarks. `glamm eval gcg|refseg|regcap --model DIR --data PATH` runs the
// model over a dataset and scores it; `glamm eval score TASK --gt FILE --pred PATH` scores
// existing predictions (docs/evaluation.md).
#include "cli/command.h"
#include "cli/model_options.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "eval/benchmark.h"
#include "eval/bert.h"
#include "eval/datasets.h"
#include "model/eval_run.h"
#include "train/synth.h"

#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

namespace glamm::cli {
namespace {

std::atomic<bool> g_interrupted{false};
void on_sigint(int) {
    g_interrupted = true;
}

std::string checked_task(const std::string& task) {
    if (task != "gcg" && task != "refseg" && task != "regcap")
        throw UsageError("unknown task \"" + task + "\" (gcg, refseg or regcap)");
    return task;
}

eval::MeteorOptions meteor_options(const Args& args) {
    eval::MeteorOptions m;
    m.jar  = args.get_or("meteor-jar", "");
    m.java = args.get_or("java", "");
    return m;
}

// GLaMM-Shapes ground truth (`glamm synth` regcap.json): the share of regions whose predicted
// caption names the generated object's colour and shape (issue 7's region-caption criterion),
// and the shares naming the colour and the shape on their own. Added only when every
// ground-truth caption names a generator colour and shape.
void add_colour_shape_accuracy(const std::vector<nlohmann::json>& gt,
                               const std::vector<eval::Prediction>& predictions,
                               nlohmann::json& scores) {
    std::map<std::string, std::string> predicted;
    for (const auto& p : predictions) predicted[p.image_id] = p.caption;
    int64_t regions = 0, right = 0, colour = 0, shape = 0;
    for (const auto& doc : gt)
        for (const auto& a : doc.value("annotations", nlohmann::json::array())) {
            if (!a.contains("caption") || !a.contains("image_id")) continue;
            const std::string id =
                a["image_id"].is_string() ? a["image_id"].get<std::string>() : a["image_id"].dump();
            const auto it = predicted.find(id);
            if (it == predicted.end()) continue;
            const auto m =
                synth::match_colour_and_shape(a["caption"].get<std::string>(), it->second);
            if (!m) return; // not a GLaMM-Shapes ground truth
            ++regions;
            right += m->colour && m->shape;
            colour += m->colour;
            shape += m->shape;
        }
    if (regions == 0) return;
    scores["colour_shape_accuracy"] = double(right) / double(regions);
    scores["colour_accuracy"]       = double(colour) / double(regions);
    scores["shape_accuracy"]        = double(shape) / double(regions);
    scores["colour_shape_regions"]  = regions;
}

nlohmann::json score(const std::string& task, const std::vector<nlohmann::json>& gt,
                     const std::vector<eval::Prediction>& predictions, const Args& args) {
    const eval::MeteorOptions meteor = meteor_options(args);
    if (task == "gcg") {
        // evaluate.py's phrase similarity when a bert-base-uncased folder is given.
        if (args.has("text-model"))
            return eval::score_gcg(gt, predictions,
                                   eval::make_bert_similarity(args.require("text-model")),
                                   "bert (" + args.require("text-model") + ")", meteor);
        return eval::score_gcg(gt, predictions, eval::lexical_similarity, "lexical", meteor);
    }
    if (task == "regcap") {
        nlohmann::json scores = eval::score_regcap(gt, predictions, meteor);
        add_colour_shape_accuracy(gt, predictions, scores);
        return scores;
    }
    return eval::score_refseg(gt, predictions);
}

void print_scores(const nlohmann::json& scores, const Args& args) {
    if (args.has("json"))
        std::printf("%s\n", scores.dump(2).c_str());
    else
        std::printf("%s", eval::format_scores(scores).c_str());
}

int run_score(const std::string& task, const Args& args) {
    const std::vector<std::string> gt_paths = args.all("gt");
    if (gt_paths.empty()) throw UsageError("--gt FILE is required (repeat it for several files)");
    std::vector<nlohmann::json> gt;
    for (const auto& p : gt_paths) {
        std::ifstream in(p);
        if (!in) throw Error("cannot open " + p);
        try {
            gt.push_back(nlohmann::json::parse(in));
        } catch (const std::exception& e) {
            throw Error("cannot parse " + p + ": " + e.what());
        }
    }
    const auto predictions      = eval::load_predictions(args.require("pred"));
    const nlohmann::json scores = score(task, gt, predictions, args);
    if (args.has("out")) write_file_atomic(args.require("out"), scores.dump(2) + "\n");
    print_scores(scores, args);
    return kExitOk;
}

// The GT documents merged into one (images de-duplicated, annotations concatenated), so that
// `glamm eval score TASK --gt OUT/ground_truth.json --pred OUT/predictions` scores the run again.
nlohmann::json merged(const std::vector<nlohmann::json>& docs) {
    nlohmann::json out = {{"images", nlohmann::json::array()},
                          {"annotations", nlohmann::json::array()}};
    std::set<std::string> seen;
    for (const auto& d : docs) {
        for (const auto& img : d.value("images", nlohmann::json::array()))
            if (seen.insert(img.at("id").dump()).second) out["images"].push_back(img);
        for (const auto& a : d.value("annotations", nlohmann::json::array()))
            out["annotations"].push_back(a);
    }
    return out;
}

int run_model(const std::string& task, const Args& args) {
    eval::DatasetOptions data;
    data.data   = args.require("data");
    data.images = args.get_or("images", "");
    data.split  = args.get_or("split", task == "gcg" || task == "refseg" ? "val" : "");
    data.limit  = args.get_int("limit", -1);
    if (args.has("teacher-forced") && task != "gcg")
        throw UsageError("--teacher-forced is for gcg (refseg is always teacher-forced)");
    const std::string out_dir = args.get_or("out", "glamm-eval-" + task);

    std::vector<nlohmann::json> gt;
    eval::GcgDataset gcg;
    eval::RefsegDataset refseg;
    eval::RegcapDataset regcap;
    size_t count = 0;
    if (task == "gcg") {
        gcg   = eval::read_gcg_dataset(data);
        gt    = gcg.gt;
        count = gcg.samples.size();
    } else if (task == "refseg") {
        refseg = eval::read_refseg_dataset(data);
        gt     = {refseg.gt};
        count  = refseg.samples.size();
    } else {
        regcap = eval::read_regcap_dataset(data);
        gt     = {regcap.gt};
        count  = regcap.samples.size();
    }
    if (count == 0)
        throw Error(data.data + ": no samples to evaluate (split \"" + data.split + "\")");
    std::fprintf(stderr, "%s: %zu sample(s) from %s\n", task.c_str(), count, data.data.c_str());

    auto model = Model::load(model_options_from(args));
    EvalRunOptions run;
    run.out_dir                   = (std::filesystem::path(out_dir) / "predictions").string();
    run.generation.max_new_tokens =
        static_cast<int>(args.get_int("max-new-tokens", 512, 1, kIntMax));
    run.teacher_forced            = args.has("teacher-forced");
    run.on_sample = [](size_t done, size_t total, const std::string& id, double seconds) {
        std::fprintf(stderr, "[%zu/%zu] %s %.2f s\n", done, total, id.c_str(), seconds);
        std::fflush(stderr);
    };
    std::signal(SIGINT, on_sigint);
    run.should_abort = [] { return g_interrupted.load(); };

    EvalRunResult result;
    if (task == "gcg")
        result = run_gcg_eval(model, gcg, run);
    else if (task == "refseg")
        result = run_refseg_eval(model, refseg, run);
    else
        result = run_regcap_eval(model, regcap, run);
    write_file_atomic((std::filesystem::path(out_dir) / "ground_truth.json").string(),
                      merged(gt).dump() + "\n");
    if (result.cancelled) {
        std::fprintf(stderr,
                     "interrupted after %zu of %zu samples: predictions in %s, not scored\n",
                     result.predictions.size(), count, run.out_dir.c_str());
        return kExitCancelled;
    }
    nlohmann::json scores = score(task, gt, result.predictions, args);
    scores["model"]       = model->model_dir();
    scores["data"]        = data.data;
    scores["samples"]     = count;
    if (result.clamped_boxes > 0) {
        scores["clamped_boxes"] = result.clamped_boxes;
        std::fprintf(stderr, "%zu box(es) overran their image and were clamped to it\n",
                     result.clamped_boxes);
    }
    write_file_atomic((std::filesystem::path(out_dir) / "scores.json").string(),
                      scores.dump(2) + "\n");
    std::fprintf(stderr, "wrote %zu prediction file(s) to %s and %s/scores.json\n",
                 result.files.size(), run.out_dir.c_str(), out_dir.c_str());
    print_scores(scores, args);
    return kExitOk;
}

int run_eval(const std::vector<std::string>& argv) {
    auto known = model_option_names();
    known.insert(known.end(), {"gt", "pred", "meteor-jar", "java", "out", "text-model", "data",
                               "images", "split", "limit", "max-new-tokens"});
    Args args(argv, {"json", "teacher-forced"}, known);
    const auto& pos = args.positional();
    if (pos.size() == 2 && pos[0] == "score") return run_score(checked_task(pos[1]), args);
    if (pos.size() == 1 && pos[0] != "score") {
        const std::string task = checked_task(pos[0]);
        if (args.has("gt") || args.has("pred"))
            throw UsageError(
                "--gt/--pred belong to `glamm eval score`; the model run takes --data");
        return run_model(task, args);
    }
    throw UsageError("usage: glamm eval gcg|refseg|regcap --model DIR --data PATH [options]\n"
                     "       glamm eval score gcg|refseg|regcap --gt FILE --pred PATH");
}

std::string usage() {
    return std::string(
               "usage: glamm eval gcg|refseg|regcap --model DIR --data PATH [options]\n"
               "       glamm eval score gcg|refseg|regcap --gt FILE [--gt FILE] --pred PATH "
               "[options]\n\n"
               "Model run: inference as the official GLaMM eval scripts do it (fixed instruction,\n"
               "greedy, 512 new tokens; refseg teacher-forced with \"Sure, it is [SEG].\"; regcap "
               "with\n"
               "the box prompt), predictions written to OUT/predictions/<image>.json, the ground\n"
               "truth used to OUT/ground_truth.json, the scores to OUT/scores.json and stdout.\n"
               "  --data PATH           gcg: GranD-f {split}_gcg_coco_{caption,mask}_gt.json (file "
               "or\n"
               "                        folder) or a `glamm synth` folder; refseg: refs(unc).p (or "
               "a\n"
               "                        JSON copy) with instances.json beside it, or synth "
               "refseg.json;\n"
               "                        regcap: a COCO region caption file or synth regcap.json\n"
               "  --images DIR          image folder (default: the data file's folder)\n"
               "  --split S             gcg: val|test; refseg: val|test|testA|testB (default val)\n"
               "  --limit N             evaluate the first N images (gcg), expressions (refseg) "
               "or\n"
               "                        regions (regcap)\n"
               "  --out DIR             default glamm-eval-TASK\n"
               "  --max-new-tokens N    default 512 (the reference)\n"
               "  --teacher-forced      gcg: masks of the GT grounded caption, no generation\n"
               "                        (a diagnostic, not the official protocol)\n") +
           model_options_help() +
           "Scoring (both forms):\n"
           "  --meteor-jar JAR      meteor-1.5.jar (with its data/ folder) for METEOR\n"
           "  --java PATH           the java executable (default: java on PATH)\n"
           "  --json                print the JSON object instead of the table\n"
           "  score --out FILE      also write the JSON there\n\n"
           "  --text-model DIR      gcg: a bert-base-uncased folder (config.json, vocab.txt,\n"
           "                        pytorch_model.bin or model.safetensors): recall with\n"
           "                        evaluate.py's BERT phrase similarity\n\n"
           "gcg: AP50, AP, mIoU, recall (phrase similarity BERT with --text-model, else\n"
           "\"lexical\": bag-of-words cosine, reported as such),\n"
           "BLEU1-4, ROUGE_L, CIDEr, METEOR (null with a reason when the jar or Java is missing).\n"
           "regcap: the caption metrics. refseg: cIoU and gIoU.\n"
           "score --gt/--pred formats (eval/gcg/infer.py outputs, our result.json folders, COCO\n"
           "caption results, {id, segmentation} refseg answers) and what matches the Python\n"
           "reference: docs/evaluation.md.";
}

const Registrar registrar{
    Command{"eval", "GLaMM's benchmarks (GCG, RefCOCO, region captions): run a model and score it",
            usage(), run_eval}};

} // namespace
} // namespace glamm::cli
