#include "eval/gcg_metrics.h"

#include "core/error.h"
#include "eval/caption_metrics.h"
#include "eval/numpy_math.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <sstream>

namespace glamm::eval {

// ref: mbzuai-oryx/groundingLMM eval/gcg/evaluate.py (compute_miou, find_best_matches,
// evaluate_recall_with_mapping), eval/utils.py (compute_iou)

double lexical_similarity(const std::string& a, const std::string& b) {
    auto bag = [](const std::string& s) {
        std::map<std::string, double> counts;
        std::istringstream in(ptb_tokenize(s));
        std::string w;
        while (in >> w) counts[w] += 1;
        return counts;
    };
    const auto ca = bag(a), cb = bag(b);
    double dot = 0, na = 0, nb = 0;
    for (const auto& [w, c] : ca) {
        na += c * c;
        const auto it = cb.find(w);
        if (it != cb.end()) dot += c * it->second;
    }
    for (const auto& [w, c] : cb) nb += c * c;
    if (na == 0 || nb == 0) return 0.0;
    return dot / (std::sqrt(na) * std::sqrt(nb));
}

double mask_iou(const Rle& a, const Rle& b) {
    if (a.height != b.height || a.width != b.width)
        fail("mask_iou: masks of different sizes (", a.height, "x", a.width, " and ", b.height, "x",
             b.width, ")");
    const int64_t inter = rle_merge({a, b}, true).area();
    const int64_t uni   = a.area() + b.area() - inter;
    if (uni == 0) return std::numeric_limits<double>::quiet_NaN();
    return double(inter) / double(uni);
}

namespace {

// np.argmax over a row-major matrix: the first NaN if there is one, else the first maximum.
std::pair<size_t, size_t> numpy_argmax(const std::vector<std::vector<double>>& m) {
    std::pair<size_t, size_t> best{0, 0};
    double v = m[0][0];
    if (std::isnan(v)) return best;
    for (size_t i = 0; i < m.size(); ++i)
        for (size_t j = 0; j < m[i].size(); ++j) {
            if (std::isnan(m[i][j])) return {i, j};
            if (m[i][j] > v) {
                v    = m[i][j];
                best = {i, j};
            }
        }
    return best;
}

} // namespace

double image_miou(const std::vector<Rle>& pred, const std::vector<Rle>& gt) {
    std::vector<std::vector<double>> m(pred.size(), std::vector<double>(gt.size()));
    for (size_t i = 0; i < pred.size(); ++i)
        for (size_t j = 0; j < gt.size(); ++j) m[i][j] = mask_iou(pred[i], gt[j]);
    std::vector<double> paired;
    while (!m.empty() && !m[0].empty()) {
        const auto [r, c] = numpy_argmax(m);
        const double best = m[r][c];
        // np.max is NaN when any entry is NaN, and NaN > 0 is false.
        if (std::isnan(best) || !(best > 0)) break;
        paired.push_back(best);
        m.erase(m.begin() + long(r));
        for (auto& row : m) row.erase(row.begin() + long(c));
    }
    return paired.empty() ? 0.0 : numpy_mean(paired);
}

int64_t image_recall_matches(const std::vector<Rle>& gt_masks,
                             const std::vector<std::string>& gt_phrases,
                             const std::vector<Rle>& pred_masks,
                             const std::vector<std::string>& pred_phrases,
                             const TextSimilarity& similarity, double iou_threshold,
                             double text_threshold) {
    std::vector<std::vector<double>> ious(gt_masks.size(), std::vector<double>(pred_masks.size()));
    for (size_t i = 0; i < gt_masks.size(); ++i)
        for (size_t j = 0; j < pred_masks.size(); ++j)
            ious[i][j] = mask_iou(gt_masks[i], pred_masks[j]);
    std::vector<std::vector<double>> sims(gt_phrases.size(),
                                          std::vector<double>(pred_phrases.size()));
    for (size_t i = 0; i < gt_phrases.size(); ++i)
        for (size_t j = 0; j < pred_phrases.size(); ++j)
            sims[i][j] = similarity(gt_phrases[i], pred_phrases[j]);
    int64_t matches = 0;
    // Every match removes a row and a column; the cap only guards thresholds <= 0, for which
    // the reference would loop forever on a zeroed matrix.
    const int64_t most = int64_t(std::min(gt_masks.size(), pred_masks.size()));
    // `while ious.size > 0`: a matrix with a zero dimension has no entries.
    while (!ious.empty() && !ious[0].empty() && matches < most) {
        const auto [r, c] = numpy_argmax(ious);
        // ref: evaluate.py `ious[idx] < iou_threshold or text_sims[idx] < …`: `or` short-circuits,
        // so text_sims is indexed (and raises for a mask without a phrase) only when the IoU
        // passes. NaN compares false, so a NaN IoU passes this test as in the reference.
        if (ious[r][c] < iou_threshold) break;
        if (r >= sims.size() || c >= sims[r].size())
            fail("recall: mask ", r, "/", c, " has no phrase (", gt_phrases.size(), " GT and ",
                 pred_phrases.size(), " predicted phrases for ", gt_masks.size(), " and ",
                 pred_masks.size(), " masks)");
        if (sims[r][c] < text_threshold) break;
        ++matches;
        for (auto& v : ious[r]) v = 0;
        for (auto& row : ious) row[c] = 0;
        for (auto& v : sims[r]) v = 0;
        for (auto& row : sims)
            if (c < row.size()) row[c] = 0;
    }
    return matches;
}

} // namespace glamm::eval
