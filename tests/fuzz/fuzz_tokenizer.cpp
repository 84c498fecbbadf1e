// libFuzzer target: arbitrary bytes through GLaMM's tokenizer (encode, encode_with_image, decode,
// TokenStream, markup parsing). Must never crash; checks the invariants that must hold for any
// input (ids in range, plain printable ASCII round-trips, stream == decode) and traps otherwise.
// Tokenizer folder: $GLAMM_FUZZ_TOKENIZER_DIR, else the tiny golden model of the test data.
#include "core/error.h"
#include "text/markup.h"
#include "text/tokenizer.h"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

const glamm::Tokenizer& tokenizer() {
    static const glamm::Tokenizer t = [] {
        const char* env = std::getenv("GLAMM_FUZZ_TOKENIZER_DIR");
#ifdef GLAMM_TEST_DATA_DIR
        const std::string fallback = std::string(GLAMM_TEST_DATA_DIR) + "/golden/tiny/glamm";
#else
        const std::string fallback = "tests/data/golden/tiny/glamm";
#endif
        return glamm::Tokenizer::load(env && *env ? env : fallback);
    }();
    return t;
}

void check(bool ok) {
    if (!ok) __builtin_trap();
}

bool plain_ascii(const std::string& s) {
    for (char c : s)
        if (c < 0x20 || c > 0x7E || c == '<' || c == '[') return false;
    return true;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const glamm::Tokenizer& tok = tokenizer();
    const std::string text(reinterpret_cast<const char*>(data), size);

    const auto ids = tok.encode(text, /*add_bos=*/false);
    for (int64_t id : ids) check(id >= 0 && id < tok.vocab_size());
    const std::string decoded = tok.decode(ids);
    if (plain_ascii(text)) check(decoded == text);

    const auto with_image = tok.encode_with_image(text);
    check(!with_image.empty() && with_image.front() == tok.bos_id());
    (void)tok.decode(with_image, /*skip_special=*/true);

    glamm::TokenStream stream(tok);
    std::string streamed;
    for (int64_t id : ids) streamed += stream.push(id);
    streamed += stream.finish();
    check(streamed == tok.decode_stable(ids, false));

    // The bytes as raw ids (some out of range): decode either works or throws glamm::Error.
    std::vector<int64_t> raw;
    for (size_t i = 0; i + 1 < size; i += 2)
        raw.push_back(static_cast<int64_t>(data[i] | (data[i + 1] << 8)) % (tok.vocab_size() + 8) -
                      4);
    try {
        (void)tok.decode(raw);
    } catch (const glamm::Error&) {
    }

    const auto parsed = glamm::parse_markup(decoded);
    for (const auto& p : parsed.phrases)
        check(p.begin <= p.end && p.end <= parsed.text.size() &&
              parsed.text.compare(p.begin, p.end - p.begin, p.text) == 0);
    (void)glamm::gcg_caption(glamm::clean_generated_text(decoded));
    (void)glamm::gcg_phrases(decoded);
    return 0;
}
