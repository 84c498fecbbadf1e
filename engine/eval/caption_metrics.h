// Caption metrics as coco-caption (pycocoevalcap) computes them: its PTB tokenisation, BLEU-1..4
// (bleu_scorer.py, corpus level, reference length "closest"), ROUGE-L (rouge.py, beta 1.2) and
// CIDEr-D (cider_scorer.py: n = 1..4, sigma 6, clipped counts, document frequency over the
// evaluated references, x10). METEOR needs the external jar (eval/meteor.h).
#pragma once

#include <array>
#include <string>
#include <vector>

namespace glamm::eval {

// The tokenisation pycocoevalcap's PTBTokenizer produces (Stanford PTBTokenizer -lowerCase, then
// the punctuation tokens '' ' `` ` -LRB- -RRB- -LCB- -RCB- . ? ! , : - -- ... ; dropped): words
// lower-cased; clitics split off ("dog's" -> "dog 's", "don't" -> "do n't"); punctuation
// separated and dropped except inside numbers ("3.5", "1,000") and hyphenated words; the tokens
// joined by single spaces. A re-implementation of the rules that matter for captions, not the
// full lexer (docs/evaluation.md lists the differences).
std::string ptb_tokenize(const std::string& text);

// One evaluated corpus, already tokenised: per image, the candidate caption and its references,
// in the order coco-caption iterates the images (the ground truth's image order).
struct CaptionCorpus {
    std::vector<std::string> candidates;
    std::vector<std::vector<std::string>> references;
};

// Corpus BLEU-1..4 (coco-caption Bleu(4), option "closest": per sentence the reference length
// nearest the candidate's, the shorter on ties; brevity penalty on the corpus totals).
std::array<double, 4> bleu(const CaptionCorpus& corpus);
// Mean over images of the LCS F-measure with beta 1.2 built from the best precision and the best
// recall over the references.
double rouge_l(const CaptionCorpus& corpus);
// coco-caption "CIDEr" (CIDEr-D): mean over images of 10 x the mean over n = 1..4 and references
// of the clipped tf-idf cosine times exp(-(len_c - len_r)^2 / (2 sigma^2)), where len counts
// bigrams as cider_scorer.py does. Per-image scores in `per_image` when given.
double cider_d(const CaptionCorpus& corpus, std::vector<double>* per_image = nullptr);

} // namespace glamm::eval
