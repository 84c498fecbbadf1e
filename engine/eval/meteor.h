// METEOR through meteor-1.5.jar, spoken to the way pycocoevalcap's meteor.py does: one
// `java -jar -Xmx2G meteor-1.5.jar - - -stdio -l en -norm` process; per image a
// "SCORE ||| ref 1 ||| ... ||| ref n ||| hyp" line answered by a statistics line, then one
// "EVAL ||| stats 1 ||| ... ||| stats N" line answered by N per-image scores and the corpus score.
#pragma once

#include <string>
#include <vector>

namespace glamm::eval {

// How METEOR is obtained. An empty or missing jar, or no java, makes it "unavailable".
struct MeteorOptions {
    std::string jar;        // meteor-1.5.jar (its folder holds data/paraphrase-en.gz)
    std::string java;       // the java executable; empty: "java" on PATH
    double timeout_s = 600; // longest wait for one reply line of the jar
};

struct MeteorResult {
    bool available = false;
    std::string status;            // "meteor-1.5.jar via JAVA" or "unavailable: why"
    double score = 0;              // the corpus score (the jar's last line)
    std::vector<double> per_image; // one per hypothesis, in input order
};

// `hypotheses[i]` with its `references[i]`, already PTB-tokenised as COCOEvalCap passes them.
// Returns available = false with a reason when the jar or java cannot be found; throws Error
// naming the jar, the line sent and the process's stderr when the process dies, times out or
// answers something that is not a number.
MeteorResult meteor_score(const MeteorOptions& options, const std::vector<std::string>& hypotheses,
                          const std::vector<std::vector<std::string>>& references);

// The executable `name` (a path with '/' as is, else searched on PATH); empty when not found.
std::string find_executable(const std::string& name);

} // namespace glamm::eval
