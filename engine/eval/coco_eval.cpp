#include "eval/coco_eval.h"

#include "core/error.h"
#include "eval/numpy_math.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <optional>

namespace glamm::eval {

// ref: cocodataset/cocoapi PythonAPI/pycocotools/cocoeval.py (Params.setDetParams, computeIoU,
// evaluateImg, accumulate, summarize)

namespace {

// Area ranges of Params.setDetParams: all, small (< 32²), medium, large (> 96²).
constexpr double kAreaSmall    = 32.0 * 32.0;
constexpr double kAreaLarge    = 96.0 * 96.0;
constexpr double kAreaMax      = 1e10;
const double kAreaRanges[4][2] = {
    {0, kAreaMax}, {0, kAreaSmall}, {kAreaSmall, kAreaLarge}, {kAreaLarge, kAreaMax}};
constexpr int kNumAreas = 4;
// evaluateImg caps the threshold just below 1 so that a perfect IoU still matches.
constexpr double kIouCap = 1 - 1e-10;
// np.spacing(1) in the precision denominator.
constexpr double kEps = 2.220446049250313e-16;

// np.linspace(start, stop, num): start + i * step, the last value exactly stop.
std::vector<double> linspace(double start, double stop, int num) {
    std::vector<double> v(static_cast<size_t>(num));
    const double step = (stop - start) / (num - 1);
    for (int i = 0; i < num; ++i) v[static_cast<size_t>(i)] = i * step + start;
    v.back() = stop;
    return v;
}

// Indices of `keys` sorted ascending, stable (np.argsort(kind="mergesort")).
template <class Key> std::vector<size_t> stable_argsort(const std::vector<Key>& keys) {
    std::vector<size_t> idx(keys.size());
    std::iota(idx.begin(), idx.end(), size_t(0));
    std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return keys[a] < keys[b]; });
    return idx;
}

struct EvalImg {
    std::vector<double> dt_scores;              // [D]
    std::vector<std::vector<int64_t>> dt_match; // [T][D] matched GT id, 0 = none
    std::vector<std::vector<bool>> dt_ignore;   // [T][D]
    std::vector<bool> gt_ignore;                // [G]
};

} // namespace

std::vector<double> coco_iou_thresholds() {
    return linspace(.5, 0.95, 10);
}
std::vector<double> coco_recall_thresholds() {
    return linspace(.0, 1.00, 101);
}

CocoEvalResult coco_segm_eval(const std::vector<CocoGt>& gts, const std::vector<CocoDt>& dts,
                              const CocoEvalParams& params) {
    const std::vector<double> iou_thrs = coco_iou_thresholds();
    const std::vector<double> rec_thrs = coco_recall_thresholds();
    const size_t T = iou_thrs.size(), R = rec_thrs.size();
    const size_t K = params.category_ids.size(), I = params.image_ids.size();
    const size_t max_det = static_cast<size_t>(params.max_dets);

    // _prepare: annotations per (image, category) in input order.
    std::map<std::pair<std::string, int64_t>, std::vector<const CocoGt*>> gt_of;
    std::map<std::pair<std::string, int64_t>, std::vector<const CocoDt*>> dt_of;
    for (const auto& g : gts) gt_of[{g.image_id, g.category_id}].push_back(&g);
    for (const auto& d : dts) dt_of[{d.image_id, d.category_id}].push_back(&d);
    static const std::vector<const CocoGt*> no_gt;
    static const std::vector<const CocoDt*> no_dt;

    // evalImgs[k][a][i]
    std::vector<std::vector<std::vector<std::optional<EvalImg>>>> eval_imgs(
        K, std::vector<std::vector<std::optional<EvalImg>>>(
               kNumAreas, std::vector<std::optional<EvalImg>>(I)));
    for (size_t k = 0; k < K; ++k) {
        for (size_t i = 0; i < I; ++i) {
            const auto key     = std::make_pair(params.image_ids[i], params.category_ids[k]);
            const auto git     = gt_of.find(key);
            const auto dit     = dt_of.find(key);
            const auto& gt     = git == gt_of.end() ? no_gt : git->second;
            const auto& dt_all = dit == dt_of.end() ? no_dt : dit->second;
            if (gt.empty() && dt_all.empty()) continue;
            // computeIoU: detections by descending score (stable), at most maxDets[-1].
            std::vector<double> neg_scores;
            for (const auto* d : dt_all) neg_scores.push_back(-d->score);
            std::vector<size_t> order = stable_argsort(neg_scores);
            if (order.size() > max_det) order.resize(max_det);
            std::vector<const CocoDt*> dt;
            for (size_t o : order) dt.push_back(dt_all[o]);
            std::vector<std::vector<double>> ious(dt.size(), std::vector<double>(gt.size()));
            for (size_t d = 0; d < dt.size(); ++d)
                for (size_t g = 0; g < gt.size(); ++g) {
                    const Rle& a = dt[d]->segmentation;
                    const Rle& b = gt[g]->segmentation;
                    // rleIou gives -1 for masks of different sizes.
                    ious[d][g] = (a.height != b.height || a.width != b.width)
                                     ? -1.0
                                     : rle_iou(a, b, gt[g]->iscrowd);
                }

            for (int a = 0; a < kNumAreas; ++a) {
                const double lo = kAreaRanges[a][0], hi = kAreaRanges[a][1];
                std::vector<int> ignore(gt.size());
                for (size_t g = 0; g < gt.size(); ++g)
                    ignore[g] = (gt[g]->iscrowd || gt[g]->area < lo || gt[g]->area > hi) ? 1 : 0;
                const std::vector<size_t> gtind = stable_argsort(ignore); // non-ignored first
                const size_t G = gt.size(), D = dt.size();
                EvalImg e;
                e.dt_match.assign(T, std::vector<int64_t>(D, 0));
                e.dt_ignore.assign(T, std::vector<bool>(D, false));
                e.gt_ignore.resize(G);
                for (size_t g = 0; g < G; ++g) e.gt_ignore[g] = ignore[gtind[g]] != 0;
                for (const auto* d : dt) e.dt_scores.push_back(d->score);
                std::vector<std::vector<int64_t>> gt_match(T, std::vector<int64_t>(G, 0));
                if (D > 0 && G > 0) {
                    for (size_t t = 0; t < T; ++t) {
                        for (size_t d = 0; d < D; ++d) {
                            double iou = std::min(iou_thrs[t], kIouCap);
                            long m     = -1;
                            for (size_t g = 0; g < G; ++g) {
                                const CocoGt* gg = gt[gtind[g]];
                                // A matched GT is taken unless it is a crowd region.
                                if (gt_match[t][g] > 0 && !gg->iscrowd) continue;
                                // Once matched to a regular GT, stop at the ignored ones.
                                if (m > -1 && !e.gt_ignore[size_t(m)] && e.gt_ignore[g]) break;
                                const double v = ious[d][gtind[g]];
                                if (v < iou) continue;
                                iou = v;
                                m   = long(g);
                            }
                            if (m == -1) continue;
                            e.dt_ignore[t][d]      = e.gt_ignore[size_t(m)];
                            e.dt_match[t][d]       = gt[gtind[size_t(m)]]->id;
                            gt_match[t][size_t(m)] = dt[d]->id;
                        }
                    }
                }
                // Unmatched detections outside the area range are ignored.
                for (size_t d = 0; d < D; ++d) {
                    const double area = double(dt[d]->segmentation.area());
                    const bool out    = area < lo || area > hi;
                    for (size_t t = 0; t < T; ++t)
                        e.dt_ignore[t][d] = e.dt_ignore[t][d] || (e.dt_match[t][d] == 0 && out);
                }
                eval_imgs[k][size_t(a)][i] = std::move(e);
            }
        }
    }

    // accumulate (maxDets 100 only): precision[t][r][k][a], recall[t][k][a]; -1 = absent.
    std::vector<double> precision(T * R * K * kNumAreas, -1.0);
    std::vector<double> recall(T * K * kNumAreas, -1.0);
    auto p_at = [&](size_t t, size_t r, size_t k, size_t a) -> double& {
        return precision[((t * R + r) * K + k) * kNumAreas + a];
    };
    for (size_t k = 0; k < K; ++k) {
        for (size_t a = 0; a < kNumAreas; ++a) {
            std::vector<double> scores;
            std::vector<std::vector<int64_t>> match(T);
            std::vector<std::vector<bool>> dig(T);
            size_t npig = 0;
            bool any    = false;
            for (size_t i = 0; i < I; ++i) {
                const auto& e = eval_imgs[k][a][i];
                if (!e) continue;
                any            = true;
                const size_t n = std::min(e->dt_scores.size(), max_det);
                scores.insert(scores.end(), e->dt_scores.begin(), e->dt_scores.begin() + long(n));
                for (size_t t = 0; t < T; ++t) {
                    match[t].insert(match[t].end(), e->dt_match[t].begin(),
                                    e->dt_match[t].begin() + long(n));
                    dig[t].insert(dig[t].end(), e->dt_ignore[t].begin(),
                                  e->dt_ignore[t].begin() + long(n));
                }
                for (bool g : e->gt_ignore) npig += g ? 0 : 1;
            }
            if (!any || npig == 0) continue;
            std::vector<double> neg;
            for (double s : scores) neg.push_back(-s);
            const std::vector<size_t> inds = stable_argsort(neg);
            const size_t nd                = inds.size();
            for (size_t t = 0; t < T; ++t) {
                std::vector<double> rc(nd), pr(nd);
                double tp = 0, fp = 0;
                for (size_t j = 0; j < nd; ++j) {
                    const size_t o = inds[j];
                    if (!dig[t][o]) (match[t][o] != 0 ? tp : fp) += 1;
                    rc[j] = tp / double(npig);
                    pr[j] = tp / (fp + tp + kEps);
                }
                recall[(t * K + k) * kNumAreas + a] = nd ? rc.back() : 0;
                for (size_t j = nd; j-- > 1;)
                    if (pr[j] > pr[j - 1]) pr[j - 1] = pr[j];
                for (size_t r = 0; r < R; ++r) {
                    // np.searchsorted(rc, recThr, side="left"); past the end -> stays 0.
                    const size_t pi =
                        size_t(std::lower_bound(rc.begin(), rc.end(), rec_thrs[r]) - rc.begin());
                    p_at(t, r, k, a) = pi < nd ? pr[pi] : 0.0;
                }
            }
        }
    }

    // summarize: mean of the entries > -1, in C order over [t, r, k].
    auto mean_ap = [&](std::optional<size_t> only_t, size_t a) {
        std::vector<double> v;
        for (size_t t = 0; t < T; ++t) {
            if (only_t && *only_t != t) continue;
            for (size_t r = 0; r < R; ++r)
                for (size_t k = 0; k < K; ++k)
                    if (p_at(t, r, k, a) > -1) v.push_back(p_at(t, r, k, a));
        }
        return v.empty() ? -1.0 : numpy_mean(v);
    };
    CocoEvalResult res;
    res.ap        = mean_ap(std::nullopt, 0);
    res.ap50      = mean_ap(size_t(0), 0);
    res.ap75      = mean_ap(size_t(5), 0);
    res.ap_small  = mean_ap(std::nullopt, 1);
    res.ap_medium = mean_ap(std::nullopt, 2);
    res.ap_large  = mean_ap(std::nullopt, 3);
    std::vector<double> rv;
    for (size_t t = 0; t < T; ++t)
        for (size_t k = 0; k < K; ++k)
            if (recall[(t * K + k) * kNumAreas] > -1) rv.push_back(recall[(t * K + k) * kNumAreas]);
    res.ar100 = rv.empty() ? -1.0 : numpy_mean(rv);
    res.precision.assign(T, std::vector<std::vector<double>>(R, std::vector<double>(K)));
    for (size_t t = 0; t < T; ++t)
        for (size_t r = 0; r < R; ++r)
            for (size_t k = 0; k < K; ++k) res.precision[t][r][k] = p_at(t, r, k, 0);
    return res;
}

} // namespace glamm::eval
