// GLaMM's tokenizer on sentencepiece, reproducing transformers-4.28's slow LlamaTokenizer.
//
// Why sentencepiece lives in a separately loaded module (glamm_spm.so, engine/text/spm_module.cpp):
// libsentencepiece.so.0 bundles protobuf 3.14 while LibTorch loads the system protobuf 3.21; in one
// process they crash during static initialisation, before main(). The module is opened with
// dlmopen(LM_ID_NEWLM, RTLD_NOW | RTLD_LOCAL): a fresh link-map namespace gets its own copies of
// sentencepiece, protobuf, libstdc++ and libc, so nothing is shared with LibTorch's. Unlike
// dlopen(RTLD_DEEPBIND) this also works under AddressSanitizer (which refuses DEEPBIND). Only C
// types cross the boundary and memory is never handed across it (each namespace has its own heap
// and libstdc++), see the ABI comments in spm_module.cpp.
// The module is looked up, first hit wins: $GLAMM_SPM_MODULE, <exe dir>/../lib/glamm_spm.so,
// <exe dir>/../lib/glamm-studio/glamm_spm.so, the install path, the build path.
#include "text/tokenizer.h"

#include "core/error.h"

#include <nlohmann/json.hpp>

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <unordered_map>

namespace glamm {

namespace fs = std::filesystem;

namespace {

// ---------------------------------------------------------------------------------------------
// The sentencepiece module.

constexpr int kSpmAbiVersion      = 2; // must match glamm_spm_abi_version() in spm_module.cpp
constexpr size_t kErrorBufferSize = 1024;

struct SpmModule {
    void* lib                                                      = nullptr;
    int (*abi_version)()                                           = nullptr;
    void* (*load)(const char*, char*, size_t)                      = nullptr;
    void (*free_handle)(void*)                                     = nullptr;
    int (*piece_size)(const void*)                                 = nullptr;
    long (*encode)(const void*, const char*, size_t, int*, size_t) = nullptr;
    long (*decode)(const void*, const int*, size_t, char*, size_t) = nullptr;
    long (*id_to_piece)(const void*, int, char*, size_t)           = nullptr;
    int (*piece_to_id)(const void*, const char*, size_t)           = nullptr;
    int (*piece_kind)(const void*, int)                            = nullptr;
    void (*special_ids)(const void*, int*, int*, int*, int*)       = nullptr;
    int (*train)(const char*, char*, size_t)                       = nullptr;
};

template <class Fn> void bind(void* lib, const char* name, Fn*& fn) {
    void* sym = dlsym(lib, name);
    if (!sym) fail("symbol ", name, " missing");
    fn = reinterpret_cast<Fn*>(sym);
}

std::vector<std::string> module_candidates() {
    std::vector<std::string> out;
    if (const char* env = std::getenv("GLAMM_SPM_MODULE"); env && *env) out.emplace_back(env);
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        const fs::path lib = exe.parent_path().parent_path() / "lib";
        out.push_back((lib / "glamm_spm.so").string());
        out.push_back((lib / "glamm-studio" / "glamm_spm.so").string());
    }
#ifdef GLAMM_SPM_MODULE_INSTALL_PATH
    out.emplace_back(GLAMM_SPM_MODULE_INSTALL_PATH);
#endif
#ifdef GLAMM_SPM_MODULE_BUILD_PATH
    out.emplace_back(GLAMM_SPM_MODULE_BUILD_PATH);
#endif
    return out;
}

SpmModule open_module(const std::string& path) {
    SpmModule m;
    // A new namespace per process (the module is opened once): see the file header.
    m.lib = dlmopen(LM_ID_NEWLM, path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!m.lib) {
        const char* why = dlerror();
        fail("dlmopen failed: ", why ? why : "unknown error");
    }
    try {
        bind(m.lib, "glamm_spm_abi_version", m.abi_version);
        if (m.abi_version() != kSpmAbiVersion)
            fail("ABI version ", m.abi_version(), ", expected ", kSpmAbiVersion);
        bind(m.lib, "glamm_spm_load", m.load);
        bind(m.lib, "glamm_spm_free", m.free_handle);
        bind(m.lib, "glamm_spm_piece_size", m.piece_size);
        bind(m.lib, "glamm_spm_encode", m.encode);
        bind(m.lib, "glamm_spm_decode", m.decode);
        bind(m.lib, "glamm_spm_id_to_piece", m.id_to_piece);
        bind(m.lib, "glamm_spm_piece_to_id", m.piece_to_id);
        bind(m.lib, "glamm_spm_piece_kind", m.piece_kind);
        bind(m.lib, "glamm_spm_special_ids", m.special_ids);
        bind(m.lib, "glamm_spm_train", m.train);
    } catch (...) {
        dlclose(m.lib);
        throw;
    }
    return m;
}

// Opened once per process and never closed (a namespace is a scarce resource: glibc has 16).
const SpmModule& spm_module() {
    static std::mutex mutex;
    static SpmModule module;
    static bool loaded = false;
    std::lock_guard<std::mutex> lock(mutex);
    if (loaded) return module;
    std::string tried;
    for (const auto& path : module_candidates()) {
        std::error_code ec;
        if (!fs::exists(path, ec)) {
            tried += cat("\n  ", path, " (not found)");
            continue;
        }
        try {
            module = open_module(path);
            loaded = true;
            return module;
        } catch (const std::exception& e) {
            tried += cat("\n  ", path, " (", e.what(), ")");
        }
    }
    fail("cannot load the sentencepiece module glamm_spm.so (set GLAMM_SPM_MODULE to its path); "
         "tried:",
         tried);
}

// ---------------------------------------------------------------------------------------------
// UTF-8 and Python's notion of whitespace (str.strip() with no argument).

// Decodes the code point starting at s[i]; returns its byte length (1 for an invalid byte, whose
// code point is reported as 0xFFFFFFFF).
size_t utf8_next(const std::string& s, size_t i, uint32_t* cp) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    size_t len    = 0;
    uint32_t c    = 0;
    if (b0 < 0x80) {
        *cp = b0;
        return 1;
    } else if (b0 >= 0xC2 && b0 <= 0xDF) {
        len = 2, c = b0 & 0x1F;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        len = 3, c = b0 & 0x0F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        len = 4, c = b0 & 0x07;
    } else {
        *cp = 0xFFFFFFFF;
        return 1;
    }
    if (i + len > s.size()) {
        *cp = 0xFFFFFFFF;
        return 1;
    }
    for (size_t k = 1; k < len; ++k) {
        const auto b = static_cast<unsigned char>(s[i + k]);
        if ((b & 0xC0) != 0x80) {
            *cp = 0xFFFFFFFF;
            return 1;
        }
        c = (c << 6) | (b & 0x3F);
    }
    *cp = c;
    return len;
}

bool python_isspace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

std::string python_lstrip(const std::string& s) {
    size_t i = 0;
    while (i < s.size()) {
        uint32_t cp    = 0;
        const size_t n = utf8_next(s, i, &cp);
        if (!python_isspace(cp)) break;
        i += n;
    }
    return s.substr(i);
}

std::string python_rstrip(const std::string& s) {
    // Walk forward remembering where the trailing whitespace run starts.
    size_t i = 0, keep = 0;
    while (i < s.size()) {
        uint32_t cp    = 0;
        const size_t n = utf8_next(s, i, &cp);
        i += n;
        if (!python_isspace(cp)) keep = i;
    }
    return s.substr(0, keep);
}

std::string read_text_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("cannot read ", path.string());
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

nlohmann::json read_json(const fs::path& path) {
    try {
        return nlohmann::json::parse(read_text_file(path));
    } catch (const nlohmann::json::exception& e) {
        fail(path.string(), ": invalid JSON: ", e.what());
    }
}

// A special token entry: "<s>" or {"content": "<s>", ...} (null or absent: empty).
std::string token_name(const nlohmann::json& j, const char* key) {
    if (!j.is_object() || !j.contains(key)) return {};
    const auto& v = j.at(key);
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v.at("content").is_string())
        return v.at("content").get<std::string>();
    return {};
}

} // namespace

// -------------------------------------------------------------------------------------------------

std::string python_strip(const std::string& text, bool left, bool right) {
    std::string out = left ? python_lstrip(text) : text;
    return right ? python_rstrip(out) : out;
}

std::vector<std::string> python_split(const std::string& text) {
    std::vector<std::string> words;
    std::string word;
    for (size_t i = 0; i < text.size();) {
        uint32_t cp    = 0;
        const size_t n = utf8_next(text, i, &cp);
        if (python_isspace(cp)) {
            if (!word.empty()) words.push_back(std::move(word));
            word.clear();
        } else {
            word.append(text, i, n);
        }
        i += n;
    }
    if (!word.empty()) words.push_back(std::move(word));
    return words;
}

struct Tokenizer::Impl {
    const SpmModule* mod = nullptr;
    void* sp             = nullptr;
    int64_t sp_size      = 0;
    int64_t bos = -1, eos = -1, unk = -1, pad = -1;
    std::map<std::string, int64_t> added;
    std::unordered_map<int64_t, std::string> added_by_id;
    struct SplitToken {
        std::string text;
        int64_t id;
        bool strip; // GLaMM's added tokens strip neighbouring whitespace; <s>, </s>, <unk> don't
    };
    std::vector<SplitToken> split_tokens; // longest first
    std::vector<int16_t> byte_value;      // per sentencepiece id: its byte, or -1

    ~Impl() {
        if (sp) mod->free_handle(sp);
    }

    std::vector<int> sp_encode(const std::string& text) const {
        std::vector<int> ids(text.size() + 8);
        for (;;) {
            const long n = mod->encode(sp, text.data(), text.size(), ids.data(), ids.size());
            if (n < 0) fail("sentencepiece failed to encode a text of ", text.size(), " bytes");
            if (static_cast<size_t>(n) <= ids.size()) {
                ids.resize(static_cast<size_t>(n));
                return ids;
            }
            ids.resize(static_cast<size_t>(n));
        }
    }

    std::string sp_decode(const std::vector<int>& ids) const {
        if (ids.empty()) return {};
        std::string out(ids.size() * 8 + 16, '\0');
        for (;;) {
            const long n = mod->decode(sp, ids.data(), ids.size(), out.data(), out.size());
            if (n < 0) fail("sentencepiece failed to decode ", ids.size(), " ids");
            if (static_cast<size_t>(n) <= out.size()) {
                out.resize(static_cast<size_t>(n));
                return out;
            }
            out.resize(static_cast<size_t>(n));
        }
    }

    std::string sp_piece(int64_t id) const {
        std::string out(32, '\0');
        for (;;) {
            const long n = mod->id_to_piece(sp, static_cast<int>(id), out.data(), out.size());
            if (n < 0) fail("token id ", id, " is out of range");
            if (static_cast<size_t>(n) <= out.size()) {
                out.resize(static_cast<size_t>(n));
                return out;
            }
            out.resize(static_cast<size_t>(n));
        }
    }

    // id of a token string: added tokens first, then sentencepiece pieces; -1 when unknown.
    int64_t lookup(const std::string& name) const {
        if (auto it = added.find(name); it != added.end()) return it->second;
        return mod->piece_to_id(sp, name.data(), name.size());
    }

    bool special(int64_t id) const {
        return id >= 0 && (id == bos || id == eos || id == unk || id == pad);
    }

    std::string decode(const std::vector<int64_t>& ids, bool skip_special,
                       bool space_before_special) const;
};

void train_sentencepiece(const std::string& trainer_args) {
    char err[kErrorBufferSize] = {0};
    if (!spm_module().train(trainer_args.c_str(), err, sizeof(err)))
        fail("training a sentencepiece model failed: ", err);
}

Tokenizer Tokenizer::load(const std::string& model_dir) {
    const fs::path dir(model_dir);
    auto require = [&](const char* file) {
        const fs::path p = dir / file;
        std::error_code ec;
        if (!fs::is_regular_file(p, ec)) fail("tokenizer: ", file, " not found in ", model_dir);
        return p;
    };
    const fs::path model_path = require("tokenizer.model");
    const fs::path added_path = require("added_tokens.json");
    const fs::path map_path   = dir / "special_tokens_map.json";
    const fs::path conf_path  = dir / "tokenizer_config.json";
    std::error_code ec;
    const bool have_map  = fs::is_regular_file(map_path, ec);
    const bool have_conf = fs::is_regular_file(conf_path, ec);
    if (!have_map && !have_conf)
        fail("tokenizer: neither special_tokens_map.json nor tokenizer_config.json found in ",
             model_dir);

    auto impl                  = std::make_shared<Impl>();
    impl->mod                  = &spm_module();
    char err[kErrorBufferSize] = {0};
    impl->sp                   = impl->mod->load(model_path.c_str(), err, sizeof(err));
    if (!impl->sp) fail("tokenizer: cannot load ", model_path.string(), ": ", err);
    impl->sp_size = impl->mod->piece_size(impl->sp);

    // Added tokens (name -> id).
    const auto added = read_json(added_path);
    if (!added.is_object()) fail(added_path.string(), ": expected an object of name -> id");
    for (const auto& [name, id] : added.items()) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0)
            fail(added_path.string(), ": id of \"", name, "\" is not a non-negative integer");
        impl->added[name]                    = id.get<int64_t>();
        impl->added_by_id[id.get<int64_t>()] = name;
    }

    // Special tokens: names from special_tokens_map.json, then tokenizer_config.json, then the
    // sentencepiece model's own ids; pad defaults to unk (GLaMM sets pad_token = unk_token).
    const nlohmann::json map  = have_map ? read_json(map_path) : nlohmann::json::object();
    const nlohmann::json conf = have_conf ? read_json(conf_path) : nlohmann::json::object();
    int sp_bos = -1, sp_eos = -1, sp_unk = -1, sp_pad = -1;
    impl->mod->special_ids(impl->sp, &sp_bos, &sp_eos, &sp_unk, &sp_pad);
    auto resolve = [&](const char* key, int64_t fallback) -> std::pair<std::string, int64_t> {
        std::string name = token_name(map, key);
        if (name.empty()) name = token_name(conf, key);
        if (name.empty()) return {fallback >= 0 ? impl->sp_piece(fallback) : "", fallback};
        const int64_t id = impl->lookup(name);
        if (id < 0)
            fail("tokenizer: ", key, " \"", name, "\" (", model_dir, ") is not in the vocabulary");
        return {name, id};
    };
    auto [bos_name, bos] = resolve("bos_token", sp_bos);
    auto [eos_name, eos] = resolve("eos_token", sp_eos);
    auto [unk_name, unk] = resolve("unk_token", sp_unk);
    auto [pad_name, pad] = resolve("pad_token", unk);
    impl->bos = bos, impl->eos = eos, impl->unk = unk, impl->pad = pad;
    if (impl->bos < 0) fail("tokenizer: no BOS token in ", model_dir);

    for (const auto& [name, id] : impl->added)
        if (!name.empty()) impl->split_tokens.push_back({name, id, true});
    for (const auto& special : {std::pair{bos_name, bos}, std::pair{eos_name, eos},
                                std::pair{unk_name, unk}, std::pair{pad_name, pad}}) {
        const std::string& name = special.first;
        if (name.empty() || special.second < 0 || impl->added.count(name)) continue;
        const bool dup = std::any_of(impl->split_tokens.begin(), impl->split_tokens.end(),
                                     [&](const auto& t) { return t.text == name; });
        if (!dup) impl->split_tokens.push_back({name, special.second, false});
    }
    std::stable_sort(impl->split_tokens.begin(), impl->split_tokens.end(),
                     [](const auto& a, const auto& b) { return a.text.size() > b.text.size(); });

    impl->byte_value.assign(static_cast<size_t>(impl->sp_size), -1);
    for (int64_t id = 0; id < impl->sp_size; ++id) {
        if (!(impl->mod->piece_kind(impl->sp, static_cast<int>(id)) & 4)) continue;
        const std::string piece = impl->sp_piece(id); // "<0xAB>"
        if (piece.size() == 6 && piece.compare(0, 3, "<0x") == 0)
            impl->byte_value[id] = static_cast<int16_t>(std::stoi(piece.substr(3, 2), nullptr, 16));
    }
    return Tokenizer(std::move(impl));
}

std::vector<int64_t> Tokenizer::encode(const std::string& text, bool add_bos) const {
    const Impl& im = *impl_;
    // 1. Split at added/special tokens, leftmost then longest match (transformers' Trie.split).
    struct Chunk {
        std::string text;
        const Impl::SplitToken* token = nullptr;
    };
    std::vector<Chunk> chunks;
    std::string pending;
    for (size_t i = 0; i < text.size();) {
        const Impl::SplitToken* hit = nullptr;
        for (const auto& t : im.split_tokens)
            if (text.compare(i, t.text.size(), t.text) == 0) {
                hit = &t;
                break;
            }
        if (!hit) {
            pending += text[i++];
            continue;
        }
        if (!pending.empty()) chunks.push_back({std::move(pending), nullptr});
        pending.clear();
        chunks.push_back({hit->text, hit});
        i += hit->text.size();
    }
    if (!pending.empty()) chunks.push_back({std::move(pending), nullptr});

    // 2. Whitespace next to a stripping token goes (from the neighbouring text chunks).
    for (size_t i = 0; i < chunks.size(); ++i) {
        if (!chunks[i].token || !chunks[i].token->strip) continue;
        if (i + 1 < chunks.size() && !chunks[i + 1].token)
            chunks[i + 1].text = python_lstrip(chunks[i + 1].text);
        if (i > 0 && !chunks[i - 1].token) chunks[i - 1].text = python_rstrip(chunks[i - 1].text);
    }

    // 3. Tokens map to their ids; each non-empty text chunk is encoded on its own.
    std::vector<int64_t> ids;
    if (add_bos) ids.push_back(im.bos);
    for (const auto& c : chunks) {
        if (c.token) {
            ids.push_back(c.token->id);
        } else if (!c.text.empty()) {
            for (int id : im.sp_encode(c.text)) ids.push_back(id);
        }
    }
    return ids;
}

std::vector<int64_t> Tokenizer::encode_with_image(const std::string& prompt) const {
    // ref: groundingLMM model/llava/mm_utils.py tokenizer_image_token
    std::vector<int64_t> ids{impl_->bos};
    const std::string placeholder = kImagePlaceholder;
    size_t start                  = 0;
    for (;;) {
        const size_t at = prompt.find(placeholder, start);
        const auto chunk =
            prompt.substr(start, at == std::string::npos ? std::string::npos : at - start);
        const auto encoded = encode(chunk, /*add_bos=*/false);
        ids.insert(ids.end(), encoded.begin(), encoded.end());
        if (at == std::string::npos) break;
        ids.push_back(kImageTokenIndex);
        start = at + placeholder.size();
    }
    return ids;
}

// ref: transformers 4.28 tokenization_utils.py PreTrainedTokenizer._decode and
// models/llama/tokenization_llama.py convert_tokens_to_string.
std::string Tokenizer::Impl::decode(const std::vector<int64_t>& ids, bool skip_special,
                                    bool space_before_special) const {
    // A run of sentencepiece tokens: sentencepiece decodes the pieces between special tokens; a
    // special token is written as its piece, with a space before it unless it follows another.
    auto run_text = [&](const std::vector<int64_t>& run) {
        std::string out;
        std::vector<int> pieces;
        bool prev_special = false;
        for (int64_t id : run) {
            if (special(id)) {
                if (!prev_special && space_before_special) out += ' ';
                out += sp_decode(pieces);
                out += sp_piece(id);
                pieces.clear();
                prev_special = true;
            } else {
                pieces.push_back(static_cast<int>(id));
                prev_special = false;
            }
        }
        out += sp_decode(pieces);
        return out;
    };
    std::vector<std::string> parts;
    std::vector<int64_t> run;
    for (int64_t id : ids) {
        if (id == kImageTokenIndex) continue;
        if (skip_special && special(id)) continue;
        if (auto it = added_by_id.find(id); it != added_by_id.end()) {
            if (!run.empty()) parts.push_back(run_text(run));
            run.clear();
            parts.push_back(it->second);
        } else {
            if (id < 0 || id >= sp_size) fail("decode: token id ", id, " is out of range");
            run.push_back(id);
        }
    }
    if (!run.empty()) parts.push_back(run_text(run));
    std::string text;
    for (size_t i = 0; i < parts.size(); ++i) {
        if (i) text += ' ';
        text += parts[i];
    }
    return text;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, bool skip_special) const {
    return impl_->decode(ids, skip_special, /*space_before_special=*/true);
}

std::string Tokenizer::decode_stable(const std::vector<int64_t>& ids, bool skip_special) const {
    return impl_->decode(ids, skip_special, /*space_before_special=*/false);
}

int64_t Tokenizer::bos_id() const {
    return impl_->bos;
}
int64_t Tokenizer::eos_id() const {
    return impl_->eos;
}
int64_t Tokenizer::unk_id() const {
    return impl_->unk;
}
int64_t Tokenizer::pad_id() const {
    return impl_->pad;
}
int64_t Tokenizer::vocab_size() const {
    return impl_->sp_size + static_cast<int64_t>(impl_->added.size());
}
int64_t Tokenizer::sp_vocab_size() const {
    return impl_->sp_size;
}
const std::map<std::string, int64_t>& Tokenizer::added_tokens() const {
    return impl_->added;
}
bool Tokenizer::has_token(const std::string& name) const {
    return impl_->added.count(name) != 0;
}

int64_t Tokenizer::token_id(const std::string& name) const {
    auto it = impl_->added.find(name);
    if (it == impl_->added.end()) fail("tokenizer: no added token \"", name, "\"");
    return it->second;
}

std::string Tokenizer::id_to_piece(int64_t id) const {
    if (auto it = impl_->added_by_id.find(id); it != impl_->added_by_id.end()) return it->second;
    if (id < 0 || id >= impl_->sp_size) fail("token id ", id, " is out of range");
    return impl_->sp_piece(id);
}

bool Tokenizer::is_byte_piece(int64_t id, uint8_t* byte) const {
    if (id < 0 || id >= impl_->sp_size || impl_->added_by_id.count(id)) return false;
    const int16_t v = impl_->byte_value[static_cast<size_t>(id)];
    if (v < 0) return false;
    if (byte) *byte = static_cast<uint8_t>(v);
    return true;
}

bool Tokenizer::is_special(int64_t id) const {
    return impl_->special(id);
}

// -------------------------------------------------------------------------------------------------

TokenStream::TokenStream(const Tokenizer& tokenizer, bool skip_special)
    : tokenizer_(tokenizer), skip_special_(skip_special) {}

std::string TokenStream::advance(size_t usable) {
    const std::vector<int64_t> head(ids_.begin(), ids_.begin() + static_cast<long>(usable));
    std::string text = tokenizer_.decode_stable(head, skip_special_);
    std::string delta;
    if (text.size() >= emitted_.size() && text.compare(0, emitted_.size(), emitted_) == 0) {
        delta = text.substr(emitted_.size());
    } else if (text.size() > emitted_.size()) {
        // Not expected (decode_stable only appends); keep the stream monotonic anyway.
        delta = text.substr(emitted_.size());
    }
    emitted_ += delta;
    return delta;
}

std::string TokenStream::push(int64_t id) {
    ids_.push_back(id);
    // Hold back trailing byte-fallback pieces that form an incomplete UTF-8 character.
    size_t n_bytes = 0;
    uint8_t bytes[4];
    while (n_bytes < 4 && n_bytes < ids_.size()) {
        uint8_t b = 0;
        if (!tokenizer_.is_byte_piece(ids_[ids_.size() - 1 - n_bytes], &b)) break;
        bytes[3 - n_bytes] = b;
        ++n_bytes;
    }
    size_t hold = 0;
    // Find the last lead byte among the trailing bytes (bytes[4-n_bytes .. 3]).
    for (size_t k = 0; k < n_bytes; ++k) {
        const uint8_t b = bytes[3 - k];
        if ((b & 0xC0) == 0x80) continue; // continuation byte
        const size_t need = (b >= 0xC2 && b <= 0xDF)   ? 2
                            : (b >= 0xE0 && b <= 0xEF) ? 3
                            : (b >= 0xF0 && b <= 0xF4) ? 4
                                                       : 1;
        if (k + 1 < need) hold = k + 1; // the lead and the k continuations after it
        break;
    }
    return advance(ids_.size() - hold);
}

std::string TokenStream::finish() {
    return advance(ids_.size());
}

} // namespace glamm
