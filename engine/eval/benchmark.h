// The GLaMM benchmarks on files: reading the ground truth and prediction formats the official
// eval scripts use (and our result.json), and scoring them into one JSON object per task
// (docs/evaluation.md defines the accepted formats).
#pragma once

#include "eval/gcg_metrics.h"
#include "eval/meteor.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace glamm::eval {

// One image's prediction: the official eval/gcg/infer.py file {image_id, caption, phrases,
// pred_masks} or our result.json {text, phrases: [{text, ...}], masks: [...]}.
struct Prediction {
    std::string image_id;
    std::string caption;
    std::vector<std::string> phrases;
    std::vector<Rle> masks;
};

// PATH is a JSON file (one prediction, an array of them, or an object mapping image id to one)
// or a directory (each *.json file in it, and each subdirectory's result.json whose image id is
// the subdirectory's name). A file without "image_id" takes its stem as the image id.
std::vector<Prediction> load_predictions(const std::string& path);

// How the parts of a segmentation list (polygons or boxes) make one mask: their union
// (pycocotools annToRLE: COCO mask AP, GCG), or the pixels inside exactly one part (GLaMM's
// referring-segmentation target: np.sum of the decoded parts cast to uint8, then a 2-bin
// histogram over [0, 1] that leaves out the pixels counted twice).
enum class SegmentParts { kUnion, kCountedOnce };

// Reads the COCO "segmentation" field: RLE with string or list counts, or polygons (needs the
// image size).
Rle parse_segmentation(const nlohmann::json& seg, int64_t height, int64_t width,
                       SegmentParts parts = SegmentParts::kUnion);

// GCG: `gt` are the GranD-f files (the mask GT and the caption GT, or one file holding both);
// `similarity` is the phrase similarity and `similarity_name` its name in the output.
nlohmann::json score_gcg(const std::vector<nlohmann::json>& gt,
                         const std::vector<Prediction>& predictions,
                         const TextSimilarity& similarity, const std::string& similarity_name,
                         const MeteorOptions& meteor);
// Region captioning: COCO caption GT (images, annotations {image_id, caption}).
nlohmann::json score_regcap(const std::vector<nlohmann::json>& gt,
                            const std::vector<Prediction>& predictions,
                            const MeteorOptions& meteor);
// Referring segmentation: GT annotations {id, image_id?, segmentation}; a prediction's
// image_id names the GT annotation id it answers and its first mask is the prediction.
nlohmann::json score_refseg(const std::vector<nlohmann::json>& gt,
                            const std::vector<Prediction>& predictions);

// A readable two-column table of the numeric entries of a score object.
std::string format_scores(const nlohmann::json& scores);

} // namespace glamm::eval
