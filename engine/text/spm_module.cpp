// glamm_spm.so: the sentencepiece bridge. A tiny C ABI over sentencepiece::SentencePieceProcessor,
// built as a separate MODULE and opened by engine/text/tokenizer.cpp with dlmopen(LM_ID_NEWLM).
//
// Why a module: libsentencepiece.so.0 carries its own protobuf 3.14 while LibTorch loads the system
// protobuf 3.21; linked into one process they crash in static initialisation before main()
// (docs/build-notes trap 3). Loaded into its own link-map namespace, this library (with
// sentencepiece, its protobuf and its own libstdc++/libc copies) never shares symbols with
// LibTorch. Hence the rules of this boundary:
//   - only C types cross it (no std::string, no exceptions: each namespace has its own libstdc++);
//   - memory is never handed over: results are copied into caller-provided buffers, and calls that
//     fill a buffer return the size they need, so the caller retries with a larger one;
//   - every entry point catches everything.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstddef>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace {

struct Handle {
    sentencepiece::SentencePieceProcessor sp;
};

void copy_text(const std::string& text, char* buf, size_t cap) {
    if (!buf || cap == 0) return;
    const size_t n = text.size() < cap - 1 ? text.size() : cap - 1;
    std::memcpy(buf, text.data(), n);
    buf[n] = '\0';
}

// Copies `text` (not NUL-terminated) when it fits; returns its size either way.
long fill(const std::string& text, char* buf, size_t cap) {
    if (buf && text.size() <= cap) std::memcpy(buf, text.data(), text.size());
    return static_cast<long>(text.size());
}

} // namespace

extern "C" {

// Bumped whenever a signature below changes; the loader refuses other versions.
int glamm_spm_abi_version(void) {
    return 2;
}

// Loads a sentencepiece model file. Returns an opaque handle, or NULL with a message in `err`.
void* glamm_spm_load(const char* path, char* err, size_t err_cap) {
    try {
        auto* h           = new Handle;
        const auto status = h->sp.Load(path);
        if (!status.ok()) {
            copy_text(status.ToString(), err, err_cap);
            delete h;
            return nullptr;
        }
        return h;
    } catch (const std::exception& e) {
        copy_text(e.what(), err, err_cap);
    } catch (...) {
        copy_text("unknown exception in sentencepiece", err, err_cap);
    }
    return nullptr;
}

// Trains a model: `args` is a spm_train command line ("--input=... --model_prefix=..."). Returns
// 1, or 0 with a message in `err`.
int glamm_spm_train(const char* args, char* err, size_t err_cap) {
    try {
        const auto status = sentencepiece::SentencePieceTrainer::Train(args);
        if (status.ok()) return 1;
        copy_text(status.ToString(), err, err_cap);
    } catch (const std::exception& e) {
        copy_text(e.what(), err, err_cap);
    } catch (...) {
        copy_text("unknown exception in the sentencepiece trainer", err, err_cap);
    }
    return 0;
}

void glamm_spm_free(void* handle) {
    delete static_cast<Handle*>(handle);
}

int glamm_spm_piece_size(const void* handle) {
    return static_cast<const Handle*>(handle)->sp.GetPieceSize();
}

// Encodes UTF-8 text (len bytes) exactly as SentencePieceProcessor::EncodeAsIds. Writes up to `cap`
// ids and returns how many there are (> cap: call again with a larger buffer); -1 on failure.
long glamm_spm_encode(const void* handle, const char* text, size_t len, int* ids, size_t cap) {
    try {
        std::vector<int> out;
        const auto status =
            static_cast<const Handle*>(handle)->sp.Encode(absl::string_view(text, len), &out);
        if (!status.ok()) return -1;
        if (ids && out.size() <= cap) std::memcpy(ids, out.data(), out.size() * sizeof(int));
        return static_cast<long>(out.size());
    } catch (...) {
        return -1;
    }
}

// Decodes ids to UTF-8 (SentencePieceProcessor::DecodeIds). Returns the byte size (copied when it
// fits in `cap`, not NUL-terminated); -1 on failure (e.g. an id out of range).
long glamm_spm_decode(const void* handle, const int* ids, size_t n, char* buf, size_t cap) {
    try {
        const auto* h  = static_cast<const Handle*>(handle);
        const int size = h->sp.GetPieceSize();
        for (size_t i = 0; i < n; ++i)
            if (ids[i] < 0 || ids[i] >= size) return -1;
        std::string text;
        const auto status = h->sp.Decode(std::vector<int>(ids, ids + n), &text);
        if (!status.ok()) return -1;
        return fill(text, buf, cap);
    } catch (...) {
        return -1;
    }
}

// The piece string of `id` (byte size returned, copied when it fits); -1 when out of range.
long glamm_spm_id_to_piece(const void* handle, int id, char* buf, size_t cap) {
    try {
        const auto* h = static_cast<const Handle*>(handle);
        if (id < 0 || id >= h->sp.GetPieceSize()) return -1;
        return fill(h->sp.IdToPiece(id), buf, cap);
    } catch (...) {
        return -1;
    }
}

// The id of a piece string, or -1 when the model has no such piece (sentencepiece itself answers
// unk_id for unknown pieces; we tell them apart).
int glamm_spm_piece_to_id(const void* handle, const char* piece, size_t len) {
    try {
        const auto* h = static_cast<const Handle*>(handle);
        const absl::string_view p(piece, len);
        const int id = h->sp.PieceToId(p);
        if (id == h->sp.unk_id() && h->sp.IdToPiece(id) != std::string(piece, len)) return -1;
        return id;
    } catch (...) {
        return -1;
    }
}

// Piece kind flags of `id`: 1 control, 2 unknown, 4 byte-fallback, 8 unused; -1 out of range.
int glamm_spm_piece_kind(const void* handle, int id) {
    try {
        const auto* h = static_cast<const Handle*>(handle);
        if (id < 0 || id >= h->sp.GetPieceSize()) return -1;
        return (h->sp.IsControl(id) ? 1 : 0) | (h->sp.IsUnknown(id) ? 2 : 0) |
               (h->sp.IsByte(id) ? 4 : 0) | (h->sp.IsUnused(id) ? 8 : 0);
    } catch (...) {
        return -1;
    }
}

// The model's own special ids (-1 when disabled).
void glamm_spm_special_ids(const void* handle, int* bos, int* eos, int* unk, int* pad) {
    const auto* h = static_cast<const Handle*>(handle);
    *bos          = h->sp.bos_id();
    *eos          = h->sp.eos_id();
    *unk          = h->sp.unk_id();
    *pad          = h->sp.pad_id();
}

} // extern "C"
