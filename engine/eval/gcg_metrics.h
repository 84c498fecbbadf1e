// GCG mask metrics as GLaMM's eval/gcg/evaluate.py computes them: mIoU (greedy one-to-one pairing
// per image) and mask recall (IoU >= 0.5 and phrase similarity >= 0.5, greedy with early stop).
// Masks are COCO RLEs; an IoU matrix is [rows, cols] as each function names it.
#pragma once

#include "io/rle.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace glamm::eval {

// Similarity of a ground-truth phrase and a predicted phrase (reference: cosine of mean-pooled
// bert-base-uncased last-layer embeddings).
using TextSimilarity = std::function<double(const std::string& gt, const std::string& pred)>;

// The lexical fallback reported as "text_similarity": "lexical": cosine of the bag-of-words count
// vectors of the two phrases after PTB tokenisation (lower-cased, punctuation dropped); 0 when
// either phrase has no word.
double lexical_similarity(const std::string& a, const std::string& b);

// eval/utils.py compute_iou: |A∩B| / |A∪B|, NaN when both masks are empty (0/0 in NumPy).
// Throws Error for masks of different sizes (NumPy cannot broadcast them either).
double mask_iou(const Rle& a, const Rle& b);

// compute_miou for one image: IoU matrix pred × GT; while its maximum is > 0 (NaN anywhere stops
// it, as np.max propagates NaN) take the first maximal entry in row-major order, record it and
// delete its row and column. Returns the mean of the recorded IoUs, 0 when none.
double image_miou(const std::vector<Rle>& pred, const std::vector<Rle>& gt);

// find_best_matches for one image: IoU matrix GT × pred, similarity matrix GT phrases × predicted
// phrases. Repeatedly take np.argmax of the IoU matrix (first NaN if any, else the first maximum);
// stop if its IoU < iou_threshold or its similarity < text_threshold; else count it and zero its
// row and column in both matrices. Returns the number of matches. Throws Error where the
// reference raises (the argmax falls outside the similarity matrix); the caller counts 0 then.
int64_t image_recall_matches(const std::vector<Rle>& gt_masks,
                             const std::vector<std::string>& gt_phrases,
                             const std::vector<Rle>& pred_masks,
                             const std::vector<std::string>& pred_phrases,
                             const TextSimilarity& similarity, double iou_threshold = 0.5,
                             double text_threshold = 0.5);

} // namespace glamm::eval
