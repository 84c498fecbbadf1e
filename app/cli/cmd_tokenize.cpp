// glamm tokenize: GLaMM's tokenizer on the command line (ids of a text, or the text of ids).
#include "cli/command.h"
#include "text/tokenizer.h"

#include <cstdio>
#include <sstream>

namespace glamm::cli {
namespace {

int run_tokenize(const std::vector<std::string>& argv) {
    Args args(argv, {"no-bos", "image", "decode"}, {"model"});
    if (args.positional().size() != 1)
        throw UsageError("tokenize takes exactly one TEXT argument (quote it)");
    const std::string& text   = args.positional()[0];
    const Tokenizer tokenizer = Tokenizer::load(args.require("model"));
    if (args.has("decode")) {
        std::vector<int64_t> ids;
        std::istringstream in(text);
        std::string word;
        while (in >> word) {
            try {
                size_t used = 0;
                ids.push_back(std::stoll(word, &used));
                if (used != word.size()) throw std::invalid_argument("trailing");
            } catch (const std::exception&) {
                throw UsageError("--decode expects ids separated by spaces, got \"" + word + "\"");
            }
        }
        std::printf("%s\n", tokenizer.decode(ids).c_str());
        return kExitOk;
    }
    if (args.has("image") && args.has("no-bos"))
        throw UsageError("--image always starts with BOS; drop --no-bos");
    const std::vector<int64_t> ids = args.has("image")
                                         ? tokenizer.encode_with_image(text)
                                         : tokenizer.encode(text, !args.has("no-bos"));
    std::string line;
    for (size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
    std::printf("%s\n", line.c_str());
    return kExitOk;
}

const Registrar registrar{Command{
    "tokenize", "print the token ids GLaMM's tokenizer gives a text (or decode ids)",
    "usage: glamm tokenize --model MODEL_DIR [--no-bos] TEXT\n"
    "       glamm tokenize --model MODEL_DIR --image PROMPT\n"
    "       glamm tokenize --model MODEL_DIR --decode \"ID ID ...\"\n\n"
    "Prints the ids on one line, separated by spaces (BOS first unless --no-bos). The rules are\n"
    "those GLaMM was trained with (transformers 4.28 slow LlamaTokenizer): text split at added\n"
    "tokens, whitespace next to them dropped, each piece encoded on its own.\n"
    "--image: split PROMPT on \"<image>\" and put the image sentinel -200 there\n"
    "(tokenizer_image_token). --decode: print the text of the given ids instead.\n"
    "MODEL_DIR holds tokenizer.model, added_tokens.json and special_tokens_map.json.",
    run_tokenize}};

} // namespace
} // namespace glamm::cli
