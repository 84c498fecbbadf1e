// GLaMM's answer markup: "<p> phrase </p> [SEG]" -> clean text, phrase ranges and mask indices
// (the i-th [SEG] produces the i-th mask), plus the reference's text clean-up (spec §6.6).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace glamm {

// A grounded phrase: clean_text.substr(begin, end - begin) == text (byte offsets into the clean
// text). mask_index is the index of its [SEG] (= of its mask), or -1 when it has none.
struct GroundedPhrase {
    std::string text;
    size_t begin   = 0;
    size_t end     = 0;
    int mask_index = -1;
};

struct ParsedAnswer {
    std::string text;                    // markup removed, whitespace runs collapsed, trimmed
    std::vector<GroundedPhrase> phrases; // in order of appearance
    int num_masks = 0;                   // number of [SEG] tokens
    // [SEG]s no phrase claimed (their masks have no label), as mask indices.
    std::vector<int> unlabelled_masks;
};

// Parses markup leniently and never throws:
//  - a [SEG] belongs to the nearest phrase before it that closed since the previous [SEG] and has
//    no [SEG] yet (a phrase still open at the [SEG] is closed there); otherwise it is unlabelled;
//  - a phrase without [SEG] keeps mask_index -1; "</p>" without "<p>" is dropped; "<p>" inside an
//    open phrase closes it and opens a new one; an unclosed phrase ends at the end of the text;
//  - <s>, </s>, <unk>, <im_start>, <im_end>, <bbox>, <point> and <image> are removed.
// Whitespace around removed tags collapses to one space (so "man </p> [SEG] riding" -> "man
// riding"); other characters, including the space the decoder puts before "." after [SEG], stay.
ParsedAnswer parse_markup(const std::string& text);

// The reference's post-processing of a decoded generation (app.py, eval/gcg/infer.py): remove
// "\n", replace "  " by " " (one pass, as Python's str.replace), keep what follows the last
// "ASSISTANT: ".
std::string clean_generated_text(const std::string& decoded);

// GCG eval caption (eval/gcg/infer.py): every "<...>" removed (re.sub(r'<.*?>', '')), "[SEG]"
// removed, whitespace runs joined by single spaces, outer "'" then whitespace stripped.
std::string gcg_caption(const std::string& text);
// GCG eval phrases: re.findall(r'<p>(.*?)</p>') each stripped.
std::vector<std::string> gcg_phrases(const std::string& text);

} // namespace glamm
