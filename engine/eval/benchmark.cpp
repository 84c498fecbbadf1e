#include "eval/benchmark.h"

#include "core/error.h"
#include "eval/caption_metrics.h"
#include "eval/coco_eval.h"
#include "eval/numpy_math.h"
#include "eval/refseg_metrics.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

namespace glamm::eval {

// ref: mbzuai-oryx/groundingLMM eval/gcg/evaluate.py (main: file layout, category 1, score 1.0),
// eval/region_captioning/evaluate.py; pycocotools coco.py (loadRes, annToRLE)

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string id_string(const json& id) {
    return id.is_string() ? id.get<std::string>() : id.dump();
}

json read_json(const fs::path& path) {
    std::ifstream in(path);
    if (!in) fail("cannot open ", path.string());
    try {
        return json::parse(in);
    } catch (const std::exception& e) {
        fail("cannot parse ", path.string(), ": ", e.what());
    }
}

std::vector<std::string> strings(const json& j) {
    std::vector<std::string> out;
    for (const auto& s : j) out.push_back(s.get<std::string>());
    return out;
}

Prediction parse_prediction(const json& j, const std::string& fallback_id) {
    Prediction p;
    p.image_id = j.contains("image_id") ? id_string(j["image_id"])
                 : j.contains("id")     ? id_string(j["id"])
                                        : fallback_id;
    if (j.contains("pred_masks")) { // official eval/gcg/infer.py
        p.caption = j.value("caption", "");
        if (j.contains("phrases")) p.phrases = strings(j["phrases"]);
        for (const auto& m : j["pred_masks"]) p.masks.push_back(parse_segmentation(m, 0, 0));
    } else if (j.contains("masks") || j.contains("text")) { // our result.json
        p.caption = j.value("text", "");
        for (const auto& ph : j.value("phrases", json::array()))
            p.phrases.push_back(ph.is_string() ? ph.get<std::string>()
                                               : ph.at("text").get<std::string>());
        for (const auto& m : j.value("masks", json::array()))
            p.masks.push_back(parse_segmentation(m, 0, 0));
    } else { // region caption {image_id, caption} or refseg {id, segmentation}
        p.caption = j.value("caption", "");
        if (j.contains("segmentation"))
            p.masks.push_back(parse_segmentation(j["segmentation"], 0, 0));
    }
    return p;
}

bool looks_like_prediction(const json& j) {
    return j.contains("pred_masks") || j.contains("masks") || j.contains("text") ||
           j.contains("caption") || j.contains("segmentation");
}

void collect(const json& j, const std::string& fallback_id, std::vector<Prediction>& out) {
    if (j.is_array()) {
        for (const auto& e : j) out.push_back(parse_prediction(e, fallback_id));
    } else if (j.is_object() && looks_like_prediction(j)) {
        out.push_back(parse_prediction(j, fallback_id));
    } else if (j.is_object()) { // {image_id: prediction}
        for (const auto& [k, v] : j.items()) out.push_back(parse_prediction(v, k));
    } else {
        fail("a prediction file must hold an object or an array");
    }
}

// The parts of the GT files evaluate.py uses.
struct GroundTruth {
    std::vector<std::string> images; // "images" order (first file that lists them)
    std::map<std::string, std::pair<int64_t, int64_t>> sizes; // image -> (height, width)
    std::vector<CocoGt> masks; // annotations with "segmentation", file order
    std::map<std::string, std::vector<std::string>> captions; // image -> caption texts
    std::map<std::string, std::vector<std::string>> labels;   // image -> first caption's labels
    bool numeric_ids = true;
};

GroundTruth read_ground_truth(const std::vector<json>& docs,
                              SegmentParts parts = SegmentParts::kUnion) {
    GroundTruth gt;
    std::set<std::string> seen;
    for (const auto& doc : docs) {
        for (const auto& img : doc.value("images", json::array())) {
            const std::string id = id_string(img.at("id"));
            if (!img.at("id").is_number()) gt.numeric_ids = false;
            gt.sizes[id] = {img.value("height", int64_t(0)), img.value("width", int64_t(0))};
            if (seen.insert(id).second) gt.images.push_back(id);
        }
    }
    int64_t next_id = 1;
    for (const auto& doc : docs) {
        for (const auto& ann : doc.value("annotations", json::array())) {
            const std::string img = id_string(ann.at("image_id"));
            if (ann.contains("segmentation")) {
                CocoGt g;
                g.image_id    = img;
                g.id          = ann.contains("id") ? ann["id"].get<int64_t>() : next_id;
                g.category_id = ann.value("category_id", int64_t(1));
                const auto size =
                    gt.sizes.count(img) ? gt.sizes[img] : std::pair<int64_t, int64_t>{0, 0};
                g.segmentation =
                    parse_segmentation(ann["segmentation"], size.first, size.second, parts);
                g.area         = ann.contains("area") ? ann["area"].get<double>()
                                                      : double(g.segmentation.area());
                g.iscrowd      = ann.value("iscrowd", 0) != 0;
                gt.masks.push_back(std::move(g));
                ++next_id;
            }
            if (ann.contains("caption")) {
                gt.captions[img].push_back(ann["caption"].get<std::string>());
                if (!gt.labels.count(img)) {
                    const json l   = ann.contains("labels") ? ann["labels"]
                                                            : ann.value("phrases", json::array());
                    gt.labels[img] = strings(l);
                }
            }
        }
    }
    return gt;
}

// pycocotools' sorted(getImgIds()): numbers numerically, strings by code point.
std::vector<std::string> sorted_ids(std::vector<std::string> ids, bool numeric) {
    if (numeric)
        std::stable_sort(ids.begin(), ids.end(), [](const std::string& a, const std::string& b) {
            return std::stod(a) < std::stod(b);
        });
    else
        std::sort(ids.begin(), ids.end());
    return ids;
}

// COCOEvalCap over the GT images that have a prediction, in GT order.
void add_caption_scores(const GroundTruth& gt, const std::map<std::string, const Prediction*>& pred,
                        const MeteorOptions& meteor, json& out) {
    CaptionCorpus corpus;
    for (const auto& img : gt.images) {
        const auto p = pred.find(img);
        const auto c = gt.captions.find(img);
        if (p == pred.end() || c == gt.captions.end()) continue;
        corpus.candidates.push_back(ptb_tokenize(p->second->caption));
        std::vector<std::string> refs;
        for (const auto& r : c->second) refs.push_back(ptb_tokenize(r));
        corpus.references.push_back(std::move(refs));
    }
    out["captions_scored"] = corpus.candidates.size();
    if (corpus.candidates.empty()) return;
    const auto b = bleu(corpus);
    for (int k = 0; k < 4; ++k) out["BLEU" + std::to_string(k + 1)] = b[size_t(k)];
    out["ROUGE_L"] = rouge_l(corpus);
    out["CIDEr"]   = cider_d(corpus);
    // METEOR sees the same PTB tokens (COCOEvalCap tokenises once for every scorer).
    const MeteorResult m = meteor_score(meteor, corpus.candidates, corpus.references);
    out["METEOR"]        = m.available ? json(m.score) : json(nullptr);
    out["METEOR_status"] = m.status;
}

std::map<std::string, const Prediction*> by_image(const std::vector<Prediction>& predictions) {
    std::map<std::string, const Prediction*> m;
    for (const auto& p : predictions) m[p.image_id] = &p;
    return m;
}

} // namespace

Rle parse_segmentation(const json& seg, int64_t height, int64_t width, SegmentParts parts) {
    if (seg.is_array()) { // polygons
        if (height <= 0 || width <= 0)
            fail("polygon segmentation without the image's height/width");
        std::vector<std::vector<double>> polys;
        for (const auto& p : seg) polys.push_back(p.get<std::vector<double>>());
        // ref: pycocotools mask.pyx frPyObjects: a list whose first entry holds 4 numbers is a
        // list of boxes [x, y, w, h] (frBbox: rleFrBbox's 4-corner polygons); otherwise each
        // entry is a polygon of int(len / 2) points (frPoly: an odd last number is dropped).
        if (!polys.empty() && polys[0].size() < 4)
            fail("segmentation: a polygon needs at least 3 points (its first has ", polys[0].size(),
                 " numbers)");
        const bool boxes = !polys.empty() && polys[0].size() == 4;
        for (auto& p : polys) {
            if (boxes) {
                if (p.size() != 4)
                    fail("segmentation: a list of boxes holds one of ", p.size(), " numbers");
                const double xs = p[0], ys = p[1], xe = p[0] + p[2], ye = p[1] + p[3];
                p = {xs, ys, xs, ye, xe, ye, xe, ys};
            } else if (p.size() % 2 != 0) {
                p.pop_back();
            }
        }
        if (parts == SegmentParts::kUnion || polys.size() < 2)
            return rle_from_polygons(polys, height, width);
        // ref: GLaMM dataset/segm_datasets/RefCOCO_Segm_ds.py: m = np.sum(mask.decode(rle),
        // axis=2).astype(np.uint8) (a uint8 count, wrapping as the cast does); the evaluation's
        // histc over [0, 1] then sees only counts 0 and 1.
        std::vector<uint8_t> count(static_cast<size_t>(height * width), 0);
        for (const auto& p : polys) {
            const std::vector<uint8_t> part = rle_decode(rle_from_polygon(p, height, width));
            for (size_t i = 0; i < count.size(); ++i) count[i] = uint8_t(count[i] + part[i]);
        }
        for (auto& c : count) c = c == 1;
        return rle_encode(count.data(), height, width);
    }
    const auto size = seg.at("size").get<std::vector<int64_t>>();
    if (size.size() != 2) fail("RLE size must be [height, width]");
    const json& counts = seg.at("counts");
    if (counts.is_string()) return rle_from_string(counts.get<std::string>(), size[0], size[1]);
    Rle r{size[0], size[1], counts.get<std::vector<uint32_t>>()};
    int64_t total = 0;
    for (auto c : r.counts) total += c;
    if (total != size[0] * size[1]) fail("uncompressed RLE runs add up to ", total, " pixels");
    return r;
}

std::vector<Prediction> load_predictions(const std::string& path) {
    std::vector<Prediction> out;
    const fs::path p(path);
    if (fs::is_directory(p)) {
        std::vector<fs::path> files;
        for (const auto& e : fs::directory_iterator(p)) {
            if (e.is_regular_file() && e.path().extension() == ".json") files.push_back(e.path());
            if (e.is_directory() && fs::exists(e.path() / "result.json"))
                files.push_back(e.path() / "result.json");
        }
        std::sort(files.begin(), files.end());
        for (const auto& f : files) {
            const std::string fallback = f.filename() == "result.json"
                                             ? f.parent_path().filename().string()
                                             : f.stem().string();
            with_context("reading " + f.string(), [&] { collect(read_json(f), fallback, out); });
        }
    } else {
        const std::string fallback =
            p.filename() == "result.json" ? p.parent_path().filename().string() : p.stem().string();
        with_context("reading " + p.string(), [&] { collect(read_json(p), fallback, out); });
    }
    return out;
}

json score_gcg(const std::vector<json>& docs, const std::vector<Prediction>& predictions,
               const TextSimilarity& similarity, const std::string& similarity_name,
               const MeteorOptions& meteor) {
    const GroundTruth gt = read_ground_truth(docs);
    const auto pred      = by_image(predictions);
    json out;
    out["task"]     = "gcg";
    out["images"]   = gt.images.size();
    int64_t missing = 0;
    for (const auto& img : gt.images) missing += pred.count(img) ? 0 : 1;
    out["missing_predictions"] = missing;

    // 1. AP: every predicted mask is category 1 with score 1.0, numbered in file order.
    std::vector<CocoDt> dts;
    std::set<std::string> known(gt.images.begin(), gt.images.end());
    for (const auto& p : predictions) {
        if (!known.count(p.image_id))
            fail("prediction for image \"", p.image_id, "\" which is not in the ground truth");
        for (const auto& m : p.masks) {
            CocoDt d;
            d.id           = int64_t(dts.size()) + 1;
            d.image_id     = p.image_id;
            d.segmentation = m;
            dts.push_back(std::move(d));
        }
    }
    CocoEvalParams params;
    params.image_ids        = sorted_ids(gt.images, gt.numeric_ids);
    params.category_ids     = {1};
    const CocoEvalResult ap = coco_segm_eval(gt.masks, dts, params);
    out["AP50"]             = ap.ap50;
    out["AP"]               = ap.ap;

    // 2. Captions.
    add_caption_scores(gt, pred, meteor, out);

    // 3. mIoU and 4. recall over all GT images.
    std::map<std::string, std::vector<Rle>> gt_masks;
    for (const auto& g : gt.masks) gt_masks[g.image_id].push_back(g.segmentation);
    std::vector<double> mious;
    int64_t tp = 0, positives = 0, recall_failures = 0;
    static const std::vector<Rle> none;
    for (const auto& img : gt.images) {
        const auto pit = pred.find(img);
        const auto git = gt_masks.find(img);
        const auto& g  = git == gt_masks.end() ? none : git->second;
        const auto& d  = pit == pred.end() ? none : pit->second->masks;
        mious.push_back(image_miou(d, g));
        const auto lit = gt.labels.find(img);
        if (lit == gt.labels.end() || pit == pred.end()) continue; // the reference raises first
        positives += int64_t(lit->second.size());
        try {
            tp += image_recall_matches(g, lit->second, d, pit->second->phrases, similarity);
        } catch (const Error&) {
            ++recall_failures; // evaluate.py prints the exception and counts 0 for the image
        }
    }
    out["mIoU"]                  = mious.empty() ? 0.0 : numpy_mean(mious);
    out["recall"]                = positives > 0 ? double(tp) / double(positives) : 0.0;
    out["recall_true_positives"] = tp;
    out["recall_gt_phrases"]     = positives;
    out["recall_images_failed"]  = recall_failures;
    out["text_similarity"]       = similarity_name;
    return out;
}

json score_regcap(const std::vector<json>& docs, const std::vector<Prediction>& predictions,
                  const MeteorOptions& meteor) {
    const GroundTruth gt = read_ground_truth(docs);
    json out;
    out["task"]   = "regcap";
    out["images"] = gt.images.size();
    add_caption_scores(gt, by_image(predictions), meteor, out);
    return out;
}

json score_refseg(const std::vector<json>& docs, const std::vector<Prediction>& predictions) {
    const GroundTruth gt = read_ground_truth(docs, SegmentParts::kCountedOnce);
    const auto pred      = by_image(predictions);
    RefsegAccumulator acc;
    int64_t missing = 0;
    for (const auto& g : gt.masks) {
        const auto it = pred.find(std::to_string(g.id));
        if (it == pred.end() || it->second->masks.empty()) {
            ++missing; // scored as an empty prediction
            acc.add(Rle{g.segmentation.height,
                        g.segmentation.width,
                        {uint32_t(g.segmentation.height * g.segmentation.width)}},
                    g.segmentation);
        } else {
            acc.add(it->second->masks.front(), g.segmentation);
        }
    }
    const RefsegScores s = acc.finish();
    json out;
    out["task"]                = "refseg";
    out["cIoU"]                = s.ciou;
    out["gIoU"]                = s.giou;
    out["pairs"]               = s.pairs;
    out["missing_predictions"] = missing;
    return out;
}

std::string format_scores(const json& scores) {
    std::string out;
    for (const auto& [k, v] : scores.items()) {
        char line[160];
        if (v.is_number_float())
            std::snprintf(line, sizeof line, "%-24s %10.4f\n", k.c_str(), v.get<double>());
        else
            std::snprintf(line, sizeof line, "%-24s %10s\n", k.c_str(),
                          v.is_string() ? v.get<std::string>().c_str() : v.dump().c_str());
        out += line;
    }
    return out;
}

} // namespace glamm::eval
