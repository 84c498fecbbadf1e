// glamm eval score: GLaMM's benchmark metrics (GCG, referring segmentation, region captioning)
// on existing predictions, without Python (docs/evaluation.md).
#include "cli/command.h"
#include "core/error.h"
#include "eval/benchmark.h"

#include <cstdio>
#include <fstream>

namespace glamm::cli {
namespace {

int run_eval(const std::vector<std::string>& argv) {
    Args args(argv, {"json"}, {"gt", "pred", "meteor-jar", "out", "text-model"});
    const auto& pos = args.positional();
    if (pos.size() != 2 || pos[0] != "score")
        throw UsageError("usage: glamm eval score gcg|refseg|regcap --gt FILE --pred PATH");
    const std::string task = pos[1];
    if (task != "gcg" && task != "refseg" && task != "regcap")
        throw UsageError("unknown task \"" + task + "\" (gcg, refseg or regcap)");
    const std::vector<std::string> gt_paths = args.all("gt");
    if (gt_paths.empty()) throw UsageError("--gt FILE is required (repeat it for several files)");
    if (args.has("text-model"))
        throw UsageError("--text-model (BERT phrase similarity) is not implemented yet; leave it "
                         "out to use the lexical similarity");
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
    const auto predictions = eval::load_predictions(args.require("pred"));
    eval::MeteorOptions meteor{args.get_or("meteor-jar", "")};
    nlohmann::json scores;
    if (task == "gcg")
        scores = eval::score_gcg(gt, predictions, eval::lexical_similarity, "lexical", meteor);
    else if (task == "regcap")
        scores = eval::score_regcap(gt, predictions, meteor);
    else
        scores = eval::score_refseg(gt, predictions);
    if (args.has("out")) {
        std::ofstream out(args.require("out"));
        out << scores.dump(2) << "\n";
        if (!out) throw Error("cannot write " + args.require("out"));
    }
    if (args.has("json"))
        std::printf("%s\n", scores.dump(2).c_str());
    else
        std::printf("%s", eval::format_scores(scores).c_str());
    return kExitOk;
}

const Registrar registrar{Command{
    "eval", "score predictions with GLaMM's benchmark metrics (GCG, RefCOCO, region captions)",
    "usage: glamm eval score gcg|refseg|regcap --gt FILE [--gt FILE] --pred PATH\n"
    "                        [--meteor-jar meteor-1.5.jar] [--out SCORES.json] [--json]\n\n"
    "gcg: --gt the GranD-f mask GT and caption GT (val_gcg_coco_mask_gt.json,\n"
    "val_gcg_coco_caption_gt.json; or one file holding both). --pred: a directory of\n"
    "eval/gcg/infer.py outputs ({image_id, caption, phrases, pred_masks}) and/or folders with\n"
    "our result.json, or one JSON file. Reports AP50, AP, mIoU, recall (phrase similarity\n"
    "\"lexical\": bag-of-words cosine), BLEU1-4, ROUGE_L, CIDEr; METEOR is reported as "
    "unavailable.\n"
    "regcap: --gt a COCO caption file, --pred [{image_id, caption}] files.\n"
    "refseg: --gt annotations {id, segmentation}, --pred [{id, segmentation}]; cIoU and gIoU.\n"
    "Prints a table, or the JSON object with --json; --out also writes the JSON.\n"
    "Formats and what matches the Python reference: docs/evaluation.md.",
    run_eval}};

} // namespace
} // namespace glamm::cli
