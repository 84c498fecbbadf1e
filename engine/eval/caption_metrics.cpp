#include "eval/caption_metrics.h"

#include "core/error.h"
#include "eval/numpy_math.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <sstream>

namespace glamm::eval {

// ref: salaniz/pycocoevalcap tokenizer/ptbtokenizer.py, bleu/bleu_scorer.py, rouge/rouge.py,
// cider/cider_scorer.py (identical to tylin/coco-caption)

namespace {

// coco-caption's maximum n-gram order for BLEU and CIDEr, ROUGE-L's beta and CIDEr-D's sigma.
constexpr int kMaxN          = 4;
constexpr double kRougeBeta  = 1.2;
constexpr double kCiderSigma = 6.0;
constexpr double kCiderScale = 10.0;
constexpr double kBleuTiny   = 1e-15;
constexpr double kBleuSmall  = 1e-9;
// np.e (CIDEr-D raises it to a power rather than calling exp).
constexpr double kE = 2.718281828459045;

bool is_alnum(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0;
}

// Splits the clitics PTB separates from a lower-cased word: n't, 's, 're, 've, 'll, 'd, 'm.
void push_word(const std::string& w, std::vector<std::string>& out) {
    if (w.size() > 3 && w.compare(w.size() - 3, 3, "n't") == 0) {
        out.push_back(w.substr(0, w.size() - 3));
        out.push_back("n't");
        return;
    }
    for (const char* clitic : {"'s", "'re", "'ve", "'ll", "'d", "'m"}) {
        const std::string c(clitic);
        if (w.size() > c.size() && w.compare(w.size() - c.size(), c.size(), c) == 0) {
            out.push_back(w.substr(0, w.size() - c.size()));
            out.push_back(c);
            return;
        }
    }
    out.push_back(w);
}

// Characters that join two alphanumeric runs into one token (3.5, 1,000, black-and-white,
// and/or, at&t, dog's).
bool is_joiner(char c) {
    return c == '.' || c == ',' || c == '-' || c == '/' || c == '&' || c == '\'';
}

// Tokens the PTB lexer emits and pycocoevalcap drops (its PUNCTUATIONS list, brackets escaped).
bool is_dropped_punct(char c) {
    return std::string_view(".,;:!?\"'`()[]{}-").find(c) != std::string_view::npos;
}

std::vector<std::string> split(const std::string& s, bool single_space) {
    std::vector<std::string> out;
    if (single_space) { // Python str.split(" "): empty fields kept
        size_t start = 0;
        while (true) {
            const size_t p = s.find(' ', start);
            out.push_back(s.substr(start, p == std::string::npos ? std::string::npos : p - start));
            if (p == std::string::npos) break;
            start = p + 1;
        }
        return out;
    }
    std::istringstream in(s);
    std::string w;
    while (in >> w) out.push_back(w);
    return out;
}

// n-grams of a whitespace-split sentence in first-appearance order (Python dict order).
struct NgramCounts {
    std::vector<std::string> order; // keys "w1 w2 ..." in insertion order
    std::map<std::string, int> count;
    std::map<std::string, int> order_n; // n of each key
    void add(const std::string& key, int n) {
        auto [it, inserted] = count.emplace(key, 0);
        if (inserted) {
            order.push_back(key);
            order_n[key] = n;
        }
        ++it->second;
    }
};

// precook(s, n): counts of all 1..n-grams, unigrams first.
NgramCounts precook(const std::vector<std::string>& words) {
    NgramCounts c;
    for (int k = 1; k <= kMaxN; ++k)
        for (size_t i = 0; i + size_t(k) <= words.size(); ++i) {
            std::string key = words[i];
            for (int j = 1; j < k; ++j) key += " " + words[i + size_t(j)];
            c.add(key, k);
        }
    return c;
}

} // namespace

std::string ptb_tokenize(const std::string& text) {
    std::string s;
    for (char c : text) s += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::vector<std::string> tokens;
    size_t i       = 0;
    const size_t n = s.size();
    while (i < n) {
        const char c = s[i];
        if (std::isspace(static_cast<unsigned char>(c))) {
            ++i;
            continue;
        }
        if (is_alnum(c) || (static_cast<unsigned char>(c) >= 0x80)) {
            // A word: alphanumerics (and UTF-8 bytes), joined over single inner joiners.
            size_t j = i;
            while (j < n) {
                const unsigned char d = static_cast<unsigned char>(s[j]);
                if (is_alnum(s[j]) || d >= 0x80) {
                    ++j;
                } else if (is_joiner(s[j]) && j + 1 < n && is_alnum(s[j + 1])) {
                    ++j;
                } else {
                    break;
                }
            }
            // "don't": the apostrophe is followed by t, keep "n't" together with the split.
            push_word(s.substr(i, j - i), tokens);
            i = j;
            continue;
        }
        if (c == '\'') {
            // A clitic after a non-word ("'s" standing alone) or a quote.
            size_t j = i + 1;
            while (j < n && is_alnum(s[j])) ++j;
            const std::string w = s.substr(i, j - i);
            if (w == "'s" || w == "'re" || w == "'ve" || w == "'ll" || w == "'d" || w == "'m") {
                tokens.push_back(w);
                i = j;
            } else {
                ++i; // a quote: dropped
            }
            continue;
        }
        if (is_dropped_punct(c)) {
            ++i; // ., ..., -, --, quotes, brackets: all in pycocoevalcap's dropped list
            continue;
        }
        tokens.push_back(std::string(1, c)); // $ % # & + = * @ ... stay as tokens
        ++i;
    }
    std::string out;
    for (const auto& t : tokens) {
        if (t.empty()) continue;
        if (!out.empty()) out += ' ';
        out += t;
    }
    return out;
}

std::array<double, 4> bleu(const CaptionCorpus& corpus) {
    if (corpus.candidates.size() != corpus.references.size())
        fail("bleu: ", corpus.candidates.size(), " candidates for ", corpus.references.size(),
             " reference sets");
    int64_t testlen = 0, reflen = 0;
    std::array<int64_t, kMaxN> guess{}, correct{};
    for (size_t i = 0; i < corpus.candidates.size(); ++i) {
        // cook_refs: per n-gram the largest count over the references.
        std::map<std::string, int> maxcounts;
        std::vector<int64_t> reflens;
        for (const auto& ref : corpus.references[i]) {
            const auto words = split(ref, false);
            reflens.push_back(int64_t(words.size()));
            const NgramCounts c = precook(words);
            for (const auto& [k, v] : c.count) maxcounts[k] = std::max(maxcounts[k], v);
        }
        if (reflens.empty()) fail("bleu: image ", i, " has no reference");
        const auto words  = split(corpus.candidates[i], false);
        const int64_t len = int64_t(words.size());
        // _single_reflen "closest": min over (|l - testlen|, l).
        std::pair<int64_t, int64_t> best{std::abs(reflens[0] - len), reflens[0]};
        for (int64_t l : reflens) best = std::min(best, std::make_pair(std::abs(l - len), l));
        testlen += len;
        reflen += best.second;
        for (int k = 1; k <= kMaxN; ++k) guess[size_t(k - 1)] += std::max<int64_t>(0, len - k + 1);
        const NgramCounts c = precook(words);
        for (const auto& [k, v] : c.count) {
            const auto it = maxcounts.find(k);
            correct[size_t(c.order_n.at(k) - 1)] +=
                std::min(it == maxcounts.end() ? 0 : it->second, v);
        }
    }
    std::array<double, 4> bleus{};
    double b = 1.;
    for (int k = 0; k < kMaxN; ++k) {
        b *= (double(correct[size_t(k)]) + kBleuTiny) / (double(guess[size_t(k)]) + kBleuSmall);
        bleus[size_t(k)] = std::pow(b, 1. / (k + 1));
    }
    const double ratio = (double(testlen) + kBleuTiny) / (double(reflen) + kBleuSmall);
    if (ratio < 1)
        for (auto& v : bleus) v *= std::exp(1 - 1 / ratio);
    return bleus;
}

namespace {

// my_lcs: length of the longest common subsequence.
size_t lcs(const std::vector<std::string>& a, const std::vector<std::string>& b) {
    std::vector<std::vector<size_t>> t(a.size() + 1, std::vector<size_t>(b.size() + 1, 0));
    for (size_t i = 1; i <= a.size(); ++i)
        for (size_t j = 1; j <= b.size(); ++j)
            t[i][j] =
                a[i - 1] == b[j - 1] ? t[i - 1][j - 1] + 1 : std::max(t[i - 1][j], t[i][j - 1]);
    return t[a.size()][b.size()];
}

} // namespace

double rouge_l(const CaptionCorpus& corpus) {
    if (corpus.candidates.size() != corpus.references.size())
        fail("rouge_l: candidates and reference sets differ in number");
    std::vector<double> scores;
    for (size_t i = 0; i < corpus.candidates.size(); ++i) {
        const auto c    = split(corpus.candidates[i], true);
        double prec_max = 0, rec_max = 0;
        bool first = true;
        for (const auto& ref : corpus.references[i]) {
            const auto r     = split(ref, true);
            const double l   = double(lcs(r, c));
            const double p   = l / double(c.size());
            const double rec = l / double(r.size());
            prec_max         = first ? p : std::max(prec_max, p);
            rec_max          = first ? rec : std::max(rec_max, rec);
            first            = false;
        }
        if (first) fail("rouge_l: image ", i, " has no reference");
        const double beta2 = kRougeBeta * kRougeBeta;
        scores.push_back(prec_max != 0 && rec_max != 0
                             ? ((1 + beta2) * prec_max * rec_max) / (rec_max + beta2 * prec_max)
                             : 0.0);
    }
    return scores.empty() ? 0.0 : numpy_mean(scores);
}

namespace {

struct CiderVec {
    std::array<std::vector<std::pair<std::string, double>>, kMaxN> vec; // insertion order
    std::array<std::map<std::string, double>, kMaxN> lookup;
    std::array<double, kMaxN> norm{};
    int64_t length = 0; // bigram count, as cider_scorer.py's counts2vec
};

CiderVec counts2vec(const NgramCounts& cnts, const std::map<std::string, int>& df, double ref_len) {
    CiderVec v;
    for (const auto& key : cnts.order) {
        const int tf       = cnts.count.at(key);
        const auto it      = df.find(key);
        const double d     = std::log(std::max(1.0, it == df.end() ? 0.0 : double(it->second)));
        const size_t n     = size_t(cnts.order_n.at(key) - 1);
        const double value = double(tf) * (ref_len - d);
        v.vec[n].push_back({key, value});
        v.lookup[n][key] = value;
        v.norm[n] += std::pow(value, 2);
        if (n == 1) v.length += tf;
    }
    for (auto& x : v.norm) x = std::sqrt(x);
    return v;
}

std::array<double, kMaxN> cider_sim(const CiderVec& hyp, const CiderVec& ref) {
    const double delta = double(hyp.length - ref.length);
    std::array<double, kMaxN> val{};
    for (size_t n = 0; n < size_t(kMaxN); ++n) {
        for (const auto& [key, h] : hyp.vec[n]) {
            const auto it  = ref.lookup[n].find(key);
            const double r = it == ref.lookup[n].end() ? 0.0 : it->second;
            val[n] += std::min(h, r) * r; // clipped by the reference's weight
        }
        if (hyp.norm[n] != 0 && ref.norm[n] != 0) val[n] /= (hyp.norm[n] * ref.norm[n]);
        val[n] *= std::pow(kE, -(delta * delta) / (2 * kCiderSigma * kCiderSigma));
    }
    return val;
}

} // namespace

double cider_d(const CaptionCorpus& corpus, std::vector<double>* per_image) {
    if (corpus.candidates.size() != corpus.references.size())
        fail("cider_d: candidates and reference sets differ in number");
    std::vector<std::vector<NgramCounts>> refs;
    std::map<std::string, int> df; // number of images whose references contain the n-gram
    for (const auto& rs : corpus.references) {
        refs.emplace_back();
        std::map<std::string, bool> seen;
        for (const auto& r : rs) {
            refs.back().push_back(precook(split(r, false)));
            for (const auto& key : refs.back().back().order) seen[key] = true;
        }
        for (const auto& [key, unused] : seen) ++df[key];
    }
    const double ref_len = std::log(double(corpus.references.size()));
    std::vector<double> scores;
    for (size_t i = 0; i < corpus.candidates.size(); ++i) {
        if (refs[i].empty()) fail("cider_d: image ", i, " has no reference");
        const CiderVec hyp = counts2vec(precook(split(corpus.candidates[i], false)), df, ref_len);
        std::array<double, kMaxN> score{};
        for (const auto& r : refs[i]) {
            const auto s = cider_sim(hyp, counts2vec(r, df, ref_len));
            for (size_t n = 0; n < size_t(kMaxN); ++n) score[n] += s[n];
        }
        double avg = numpy_sum(score.data(), score.size()) / double(kMaxN);
        avg /= double(refs[i].size());
        avg *= kCiderScale;
        scores.push_back(avg);
    }
    if (per_image) *per_image = scores;
    return scores.empty() ? 0.0 : numpy_mean(scores);
}

} // namespace glamm::eval
