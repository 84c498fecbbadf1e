// torch.save zip archives: zip directory (ZIP64 included) + a restricted unpickler for state dicts.
// ref: pytorch torch/serialization.py (_save, _load), torch/_utils.py (_rebuild_tensor_v2),
//      caffe2/serialize/inline_container.cc (record layout), Python Lib/pickletools.py (opcodes),
//      PKWARE APPNOTE.TXT 4.3 (zip records).
#include "core/torch_zip.h"

#include "core/error.h"

#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>

namespace glamm {

namespace {

// ---------------------------------------------------------------------------------------------
// Little helpers over raw bytes.

uint64_t le(const uint8_t* p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

// [begin, begin + len) lies inside [0, size).
bool in_bounds(uint64_t begin, uint64_t len, uint64_t size) {
    return begin <= size && len <= size - begin;
}

std::string printable(const std::string& s) {
    std::string out;
    for (unsigned char c : s.substr(0, 80)) {
        if (c >= 0x20 && c < 0x7f) {
            out.push_back(static_cast<char>(c));
        } else {
            static const char* hex = "0123456789abcdef";
            out += "\\x";
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 15]);
        }
    }
    if (s.size() > 80) out += "...";
    return out;
}

// ---------------------------------------------------------------------------------------------
// Zip (PKWARE APPNOTE 4.3). Field offsets are those of the record layouts in the note.

constexpr uint32_t kLocalSig      = 0x04034b50;
constexpr uint32_t kCentralSig    = 0x02014b50;
constexpr uint32_t kEndSig        = 0x06054b50;
constexpr uint32_t kEnd64Sig      = 0x06064b50;
constexpr uint32_t kEnd64LocSig   = 0x07064b50;
constexpr size_t kLocalSize       = 30;
constexpr size_t kCentralSize     = 46;
constexpr size_t kEndSize         = 22;
constexpr size_t kEnd64Size       = 56;
constexpr size_t kEnd64LocSize    = 20;
constexpr size_t kMaxCommentBytes = 0xffff;
constexpr uint16_t kZip64ExtraId  = 0x0001;
constexpr uint32_t kU32Max        = 0xffffffffu;
constexpr uint16_t kU16Max        = 0xffffu;
constexpr uint16_t kFlagEncrypted = 0x0001;

struct EndOfDirectory {
    uint64_t entries   = 0;
    uint64_t cd_size   = 0;
    uint64_t cd_offset = 0;
};

EndOfDirectory find_end_of_directory(const uint8_t* b, size_t size, const std::string& where) {
    if (size < kEndSize) fail(where, ": ", size, " bytes is too short for a zip archive");
    // The end record sits at the very end, followed only by a comment of at most 64 KiB.
    const size_t lowest =
        size - kEndSize > kMaxCommentBytes ? size - kEndSize - kMaxCommentBytes : 0;
    size_t pos = size - kEndSize;
    for (;; --pos) {
        if (le(b + pos, 4) == kEndSig && pos + kEndSize + le(b + pos + 20, 2) == size) break;
        if (pos == lowest)
            fail(where,
                 ": no zip end-of-central-directory record (not a zip archive, or truncated)");
    }
    EndOfDirectory end;
    end.entries   = le(b + pos + 10, 2);
    end.cd_size   = le(b + pos + 12, 4);
    end.cd_offset = le(b + pos + 16, 4);
    if (le(b + pos + 4, 2) != 0 && le(b + pos + 4, 2) != kU16Max)
        fail(where, ": multi-disk zip archives are not supported");
    // torch.save always writes the ZIP64 locator + record; plain zips may not have them.
    if (pos >= kEnd64LocSize && le(b + pos - kEnd64LocSize, 4) == kEnd64LocSig) {
        const uint64_t rec = le(b + pos - kEnd64LocSize + 8, 8);
        if (!in_bounds(rec, kEnd64Size, pos - kEnd64LocSize) || le(b + rec, 4) != kEnd64Sig)
            fail(where, ": ZIP64 end-of-central-directory locator points to ", rec,
                 ", where no ZIP64 record is (truncated or corrupt archive)");
        end.entries   = le(b + rec + 32, 8);
        end.cd_size   = le(b + rec + 40, 8);
        end.cd_offset = le(b + rec + 48, 8);
    } else if (end.entries == kU16Max || end.cd_size == kU32Max || end.cd_offset == kU32Max) {
        fail(where, ": zip end record asks for ZIP64 but the ZIP64 locator is missing");
    }
    if (!in_bounds(end.cd_offset, end.cd_size, size))
        fail(where, ": zip central directory [", end.cd_offset, ", +", end.cd_size,
             ") lies outside the ", size, "-byte file (truncated archive?)");
    return end;
}

} // namespace

std::vector<ZipEntry> read_zip_entries(const uint8_t* b, size_t size, const std::string& where) {
    const EndOfDirectory end = find_end_of_directory(b, size, where);
    std::vector<ZipEntry> entries;
    uint64_t pos          = end.cd_offset;
    const uint64_t cd_end = end.cd_offset + end.cd_size;
    for (uint64_t i = 0; i < end.entries; ++i) {
        if (!in_bounds(pos, kCentralSize, cd_end) || le(b + pos, 4) != kCentralSig)
            fail(where, ": zip central directory entry ", i, " of ", end.entries,
                 " is missing or corrupt");
        const uint64_t flags       = le(b + pos + 8, 2);
        const uint64_t method      = le(b + pos + 10, 2);
        uint64_t comp_size         = le(b + pos + 20, 4);
        uint64_t size_             = le(b + pos + 24, 4);
        const uint64_t name_len    = le(b + pos + 28, 2);
        const uint64_t extra_len   = le(b + pos + 30, 2);
        const uint64_t comment_len = le(b + pos + 32, 2);
        uint64_t local             = le(b + pos + 42, 4);
        const uint64_t var_len     = name_len + extra_len + comment_len;
        if (!in_bounds(pos + kCentralSize, var_len, cd_end))
            fail(where, ": zip central directory entry ", i, " runs past the directory");
        ZipEntry e;
        e.name.assign(reinterpret_cast<const char*>(b + pos + kCentralSize), name_len);
        // ZIP64 extended information: only the fields whose 32-bit value is saturated, in order.
        const uint8_t* extra = b + pos + kCentralSize + name_len;
        for (uint64_t x = 0; x + 4 <= extra_len;) {
            const uint64_t id = le(extra + x, 2), len = le(extra + x + 2, 2);
            if (x + 4 + len > extra_len)
                fail(where, ": zip entry \"", printable(e.name), "\" has a malformed extra field");
            if (id == kZip64ExtraId) {
                uint64_t at = x + 4;
                auto take   = [&](uint64_t& field) {
                    if (field != kU32Max) return;
                    if (at + 8 > x + 4 + len)
                        fail(where, ": zip entry \"", printable(e.name),
                               "\" has a short ZIP64 field");
                    field = le(extra + at, 8);
                    at += 8;
                };
                take(size_);
                take(comp_size);
                take(local);
            }
            x += 4 + len;
        }
        if (flags & kFlagEncrypted)
            fail(where, ": zip entry \"", printable(e.name), "\" is encrypted");
        if (method != 0)
            fail(where, ": zip entry \"", printable(e.name), "\" is compressed (method ", method,
                 "); torch.save stores records uncompressed. Re-save it with torch.save, or "
                 "unzip and re-zip with `zip -0`");
        if (comp_size != size_)
            fail(where, ": zip entry \"", printable(e.name), "\" is stored but its sizes differ (",
                 comp_size, " vs ", size_, ")");
        if (!in_bounds(local, kLocalSize, size) || le(b + local, 4) != kLocalSig)
            fail(where, ": zip entry \"", printable(e.name), "\" points to a local header at ",
                 local, " that is missing (truncated or corrupt archive)");
        const uint64_t local_name = le(b + local + 26, 2), local_extra = le(b + local + 28, 2);
        if (local_name != name_len || !in_bounds(local + kLocalSize, local_name, size) ||
            std::memcmp(b + local + kLocalSize, e.name.data(), name_len) != 0)
            fail(where, ": zip entry \"", printable(e.name),
                 "\" and its local header disagree on the name");
        e.data_offset = local + kLocalSize + local_name + local_extra;
        e.size        = size_;
        if (!in_bounds(e.data_offset, e.size, size))
            fail(where, ": zip entry \"", printable(e.name), "\" [", e.data_offset, ", +", e.size,
                 ") runs past the end of the ", size, "-byte file (truncated archive?)");
        entries.push_back(std::move(e));
        pos += kCentralSize + var_len;
    }
    return entries;
}

namespace {

// ---------------------------------------------------------------------------------------------
// The restricted unpickler. Objects live in an arena and refer to each other by raw pointer, so a
// hostile pickle that builds reference cycles (a list appended to itself) cannot leak.

enum class Kind { None, Bool, Int, Float, Str, Tuple, List, Dict, Global, Storage, Tensor };

const char* kind_name(Kind k) {
    static const char* const names[] = {"None", "bool", "int",    "float",   "str",   "tuple",
                                        "list", "dict", "global", "storage", "tensor"};
    return names[static_cast<int>(k)];
}

// The only callables a pickle may name.
enum class GlobalKind {
    OrderedDict,
    RebuildTensorV2,
    RebuildParameter,
    RebuildParameterWithState,
    StorageType
};

struct Obj {
    Kind kind = Kind::None;
    int64_t i = 0;                              // Int, Bool
    double f  = 0;                              // Float
    std::string s;                              // Str; Global: "module.name"; Storage: key
    std::vector<Obj*> items;                    // Tuple, List
    std::vector<std::pair<Obj*, Obj*>> entries; // Dict (insertion order)
    GlobalKind global = GlobalKind::OrderedDict;
    DType dtype       = DType::F32; // Global StorageType, Storage, Tensor
    // Storage
    uint64_t numel         = 0;
    const ZipEntry* record = nullptr;
    // Tensor
    Obj* storage           = nullptr;
    int64_t storage_offset = 0;
    std::vector<int64_t> shape, strides;
};

struct StorageName {
    const char* name;
    DType dtype;
};
// torch.save names a storage by its legacy typed-storage class (torch/storage.py).
constexpr StorageName kStorageTypes[] = {
    {"FloatStorage", DType::F32},     {"DoubleStorage", DType::F64}, {"HalfStorage", DType::F16},
    {"BFloat16Storage", DType::BF16}, {"LongStorage", DType::I64},   {"IntStorage", DType::I32},
    {"ShortStorage", DType::I16},     {"CharStorage", DType::I8},    {"ByteStorage", DType::U8},
    {"BoolStorage", DType::BOOL},
};

// Opcode names for messages (Lib/pickletools.py).
struct OpcodeName {
    uint8_t op;
    const char* name;
};
// clang-format off
constexpr OpcodeName kOpcodeNames[] = {
    {0x80, "PROTO"}, {0x95, "FRAME"}, {'.', "STOP"}, {'(', "MARK"}, {'0', "POP"},
    {'1', "POP_MARK"}, {'2', "DUP"}, {'N', "NONE"}, {0x88, "NEWTRUE"}, {0x89, "NEWFALSE"},
    {'K', "BININT1"}, {'M', "BININT2"}, {'J', "BININT"}, {0x8a, "LONG1"}, {0x8b, "LONG4"},
    {'G', "BINFLOAT"}, {'X', "BINUNICODE"}, {0x8c, "SHORT_BINUNICODE"}, {0x8d, "BINUNICODE8"},
    {')', "EMPTY_TUPLE"}, {'t', "TUPLE"}, {0x85, "TUPLE1"}, {0x86, "TUPLE2"}, {0x87, "TUPLE3"},
    {']', "EMPTY_LIST"}, {'l', "LIST"}, {'a', "APPEND"}, {'e', "APPENDS"}, {'}', "EMPTY_DICT"},
    {'d', "DICT"}, {'s', "SETITEM"}, {'u', "SETITEMS"}, {'q', "BINPUT"}, {'r', "LONG_BINPUT"},
    {0x94, "MEMOIZE"}, {'h', "BINGET"}, {'j', "LONG_BINGET"}, {'c', "GLOBAL"},
    {0x93, "STACK_GLOBAL"}, {'R', "REDUCE"}, {'b', "BUILD"}, {'Q', "BINPERSID"}, {'P', "PERSID"},
    {'i', "INST"}, {'o', "OBJ"}, {0x81, "NEWOBJ"}, {0x92, "NEWOBJ_EX"}, {0x82, "EXT1"},
    {0x83, "EXT2"}, {0x84, "EXT4"}, {'B', "BINBYTES"}, {'C', "SHORT_BINBYTES"},
    {0x8e, "BINBYTES8"}, {0x96, "BYTEARRAY8"}, {0x97, "NEXT_BUFFER"}, {0x98, "READONLY_BUFFER"},
    {0x8f, "EMPTY_SET"}, {0x90, "ADDITEMS"}, {0x91, "FROZENSET"}, {'I', "INT"}, {'L', "LONG"},
    {'F', "FLOAT"}, {'S', "STRING"}, {'T', "BINSTRING"}, {'U', "SHORT_BINSTRING"},
    {'V', "UNICODE"}, {'g', "GET"}, {'p', "PUT"},
};
// clang-format on

const char* opcode_name(uint8_t op) {
    for (const auto& o : kOpcodeNames)
        if (o.op == op) return o.name;
    return nullptr;
}

class Unpickler {
public:
    Unpickler(const uint8_t* data, size_t size, const std::string& where,
              const std::map<std::string, const ZipEntry*>& records)
        : p_(data), size_(size), where_(where), records_(records) {}

    Obj* run() {
        for (;;) {
            op_at_           = pos_;
            const uint8_t op = byte();
            op_              = op;
            if (op == '.') break;
            step(op);
        }
        if (!marks_.empty()) error("STOP with an open MARK");
        if (stack_.size() != 1)
            error("STOP with ", stack_.size(), " objects on the stack (expected 1)");
        return stack_.back();
    }

private:
    template <class... Args> [[noreturn]] void error(Args&&... args) const {
        const char* name = opcode_name(op_);
        fail(where_, ": data.pkl at byte ", op_at_, " (opcode ", name ? name : "?",
             "): ", std::forward<Args>(args)...);
    }

    // ---- input
    uint8_t byte() {
        if (pos_ >= size_) error("pickle ends without STOP (truncated data.pkl)");
        return p_[pos_++];
    }
    const uint8_t* take(uint64_t n) {
        if (n > size_ - pos_)
            error("needs ", n, " bytes but only ", size_ - pos_, " remain (truncated)");
        const uint8_t* at = p_ + pos_;
        pos_ += n;
        return at;
    }
    uint64_t uint(int n) { return le(take(n), n); }
    std::string line() {
        const size_t start = pos_;
        while (pos_ < size_ && p_[pos_] != '\n') ++pos_;
        if (pos_ >= size_) error("unterminated GLOBAL name");
        std::string s(reinterpret_cast<const char*>(p_ + start), pos_ - start);
        ++pos_;
        return s;
    }

    // ---- objects
    Obj* make(Kind k) {
        arena_.push_back(std::make_unique<Obj>());
        arena_.back()->kind = k;
        return arena_.back().get();
    }
    Obj* make_int(int64_t v) {
        Obj* o = make(Kind::Int);
        o->i   = v;
        return o;
    }
    Obj* make_str(std::string s) {
        Obj* o = make(Kind::Str);
        o->s   = std::move(s);
        return o;
    }
    void push(Obj* o) { stack_.push_back(o); }
    size_t frame_base() const { return marks_.empty() ? 0 : marks_.back(); }
    Obj* pop() {
        if (stack_.size() <= frame_base()) error("stack underflow");
        Obj* o = stack_.back();
        stack_.pop_back();
        return o;
    }
    Obj* top() {
        if (stack_.size() <= frame_base()) error("stack underflow");
        return stack_.back();
    }
    // Pops everything above the innermost MARK, and the mark itself.
    std::vector<Obj*> pop_mark() {
        if (marks_.empty()) error("no MARK to pop to");
        const size_t base = marks_.back();
        marks_.pop_back();
        std::vector<Obj*> items(stack_.begin() + static_cast<std::ptrdiff_t>(base), stack_.end());
        stack_.resize(base);
        return items;
    }
    Obj* make_tuple(std::vector<Obj*> items) {
        Obj* t   = make(Kind::Tuple);
        t->items = std::move(items);
        return t;
    }
    void memo_put(uint64_t index) {
        if (memo_.size() >= kMaxMemo && !memo_.count(index))
            error("memo grows past ", kMaxMemo, " entries");
        memo_[index] = top();
    }
    Obj* memo_get(uint64_t index) {
        auto it = memo_.find(index);
        if (it == memo_.end()) error("memo entry ", index, " was never stored");
        return it->second;
    }
    void set_items(Obj* dict, const std::vector<Obj*>& kv) {
        if (dict->kind != Kind::Dict)
            error("SETITEM(S) on a ", kind_name(dict->kind), ", not a dict");
        if (kv.size() % 2 != 0) error("SETITEMS with an odd number of items");
        for (size_t i = 0; i < kv.size(); i += 2) dict->entries.emplace_back(kv[i], kv[i + 1]);
    }
    void append_items(Obj* list, const std::vector<Obj*>& items) {
        if (list->kind != Kind::List)
            error("APPEND(S) on a ", kind_name(list->kind), ", not a list");
        list->items.insert(list->items.end(), items.begin(), items.end());
    }

    Obj* global(const std::string& module, const std::string& name) {
        Obj* g = make(Kind::Global);
        g->s   = module + "." + name;
        if (module == "collections" && name == "OrderedDict") {
            g->global = GlobalKind::OrderedDict;
        } else if (module == "torch._utils" && name == "_rebuild_tensor_v2") {
            g->global = GlobalKind::RebuildTensorV2;
        } else if (module == "torch._utils" && name == "_rebuild_parameter") {
            g->global = GlobalKind::RebuildParameter;
        } else if (module == "torch._utils" && name == "_rebuild_parameter_with_state") {
            g->global = GlobalKind::RebuildParameterWithState;
        } else {
            bool found = false;
            if (module == "torch")
                for (const auto& st : kStorageTypes)
                    if (name == st.name) {
                        g->global = GlobalKind::StorageType;
                        g->dtype  = st.dtype;
                        found     = true;
                    }
            if (!found)
                error("global \"", printable(module), ".", printable(name),
                      "\" is not allowed: a state-dict checkpoint only needs "
                      "collections.OrderedDict, "
                      "torch._utils._rebuild_tensor_v2/_rebuild_parameter and torch.*Storage "
                      "(refusing to load a pickle that can run code)");
        }
        return g;
    }

    int64_t as_int(const Obj* o, const char* what) {
        if (o->kind != Kind::Int) error(what, " must be an int, got ", kind_name(o->kind));
        return o->i;
    }
    std::vector<int64_t> as_ints(const Obj* o, const char* what) {
        if (o->kind != Kind::Tuple && o->kind != Kind::List)
            error(what, " must be a tuple of ints, got ", kind_name(o->kind));
        std::vector<int64_t> out;
        for (const Obj* x : o->items) {
            const int64_t v = as_int(x, what);
            if (v < 0) error(what, " holds a negative value ", v);
            out.push_back(v);
        }
        return out;
    }

    // ('storage', torch.<Type>Storage, key, location, numel) -> a storage over data/<key>.
    Obj* persistent_load(Obj* pid) {
        if (pid->kind != Kind::Tuple || pid->items.size() != 5 ||
            pid->items[0]->kind != Kind::Str || pid->items[0]->s != "storage")
            error("persistent id is not ('storage', type, key, location, numel)");
        const Obj* type = pid->items[1];
        if (type->kind != Kind::Global || type->global != GlobalKind::StorageType)
            error("persistent id names a storage type that is not a torch.*Storage");
        if (pid->items[2]->kind != Kind::Str) error("storage key must be a str");
        const std::string& key = pid->items[2]->s;
        const int64_t numel    = as_int(pid->items[4], "storage numel");
        if (numel < 0) error("storage numel ", numel, " is negative");
        auto rec = records_.find(key);
        if (rec == records_.end())
            error("storage \"", printable(key), "\" has no data/", printable(key), " record");
        const uint64_t esize = dtype_size(type->dtype);
        if (static_cast<uint64_t>(numel) > rec->second->size / esize)
            error("storage \"", printable(key), "\" claims ", numel, " ", dtype_name(type->dtype),
                  " elements but its record holds ", rec->second->size, " bytes");
        auto seen = storages_.find(key);
        if (seen != storages_.end()) {
            if (seen->second->dtype != type->dtype ||
                seen->second->numel != static_cast<uint64_t>(numel))
                error("storage \"", printable(key),
                      "\" is referenced with two different types or sizes");
            return seen->second;
        }
        Obj* s         = make(Kind::Storage);
        s->s           = key;
        s->dtype       = type->dtype;
        s->numel       = static_cast<uint64_t>(numel);
        s->record      = rec->second;
        storages_[key] = s;
        return s;
    }

    // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[,
    // metadata]): a strided view into the storage, checked to stay inside it.
    Obj* rebuild_tensor(const Obj* args) {
        if (args->items.size() != 6 && args->items.size() != 7)
            error("_rebuild_tensor_v2 takes 6 or 7 arguments, got ", args->items.size());
        Obj* storage = args->items[0];
        if (storage->kind != Kind::Storage)
            error("_rebuild_tensor_v2 needs a storage, got ", kind_name(storage->kind));
        Obj* t            = make(Kind::Tensor);
        t->storage        = storage;
        t->dtype          = storage->dtype;
        t->storage_offset = as_int(args->items[1], "storage_offset");
        t->shape          = as_ints(args->items[2], "size");
        t->strides        = as_ints(args->items[3], "stride");
        if (t->storage_offset < 0) error("negative storage_offset ", t->storage_offset);
        if (t->shape.size() != t->strides.size())
            error("size has ", t->shape.size(), " dimensions but stride has ", t->strides.size());
        // Highest element index the view touches; it must lie inside the storage.
        uint64_t last = static_cast<uint64_t>(t->storage_offset);
        bool empty    = false;
        for (size_t d = 0; d < t->shape.size(); ++d) {
            if (t->shape[d] == 0) empty = true;
            uint64_t span = 0;
            if (t->shape[d] > 0 &&
                (__builtin_mul_overflow(static_cast<uint64_t>(t->shape[d] - 1),
                                        static_cast<uint64_t>(t->strides[d]), &span) ||
                 __builtin_add_overflow(last, span, &last)))
                error("tensor view overflows");
        }
        if (static_cast<uint64_t>(t->storage_offset) > storage->numel ||
            (!empty && last >= storage->numel))
            error("tensor view (offset ", t->storage_offset, ", reaching element ", last,
                  ") lies outside its storage \"", printable(storage->s), "\" of ", storage->numel,
                  " elements");
        return t;
    }

    Obj* reduce(Obj* callable, Obj* args) {
        if (callable->kind != Kind::Global)
            error("REDUCE on a ", kind_name(callable->kind), ", not a callable");
        if (args->kind != Kind::Tuple) error("REDUCE arguments must be a tuple");
        switch (callable->global) {
        case GlobalKind::OrderedDict:
            if (!args->items.empty())
                error("collections.OrderedDict with arguments is not supported");
            return make(Kind::Dict);
        case GlobalKind::RebuildTensorV2:
            return rebuild_tensor(args);
        case GlobalKind::RebuildParameter:
        case GlobalKind::RebuildParameterWithState:
            if (args->items.empty() || args->items[0]->kind != Kind::Tensor)
                error(callable->s, " needs a tensor as first argument");
            return args->items[0];
        case GlobalKind::StorageType:
            break;
        }
        error("calling ", callable->s, " is not allowed");
    }

    void step(uint8_t op) {
        switch (op) {
        case 0x80: { // PROTO
            const uint64_t proto = byte();
            if (proto < 2 || proto > 5) error("pickle protocol ", proto, " is not supported (2-5)");
            break;
        }
        case 0x95:
            take(8);
            break; // FRAME: a length hint only
        case '(':
            marks_.push_back(stack_.size());
            break;
        case '0':
            pop();
            break;
        case 'N':
            push(make(Kind::None));
            break;
        case 0x88:
        case 0x89: {
            Obj* o = make(Kind::Bool);
            o->i   = op == 0x88;
            push(o);
            break;
        }
        case 'K':
            push(make_int(static_cast<int64_t>(uint(1))));
            break;
        case 'M':
            push(make_int(static_cast<int64_t>(uint(2))));
            break;
        case 'J':
            push(make_int(static_cast<int32_t>(static_cast<uint32_t>(uint(4)))));
            break;
        case 0x8a: { // LONG1: n-byte little-endian two's complement
            const uint64_t n = byte();
            if (n > 8) error("integer of ", n, " bytes does not fit 64 bits");
            uint64_t v = n ? uint(static_cast<int>(n)) : 0;
            if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~0ull << (8 * n); // sign-extend
            push(make_int(static_cast<int64_t>(v)));
            break;
        }
        case 'G': { // BINFLOAT: big-endian double
            const uint8_t* b = take(8);
            uint64_t bits    = 0;
            for (int i = 0; i < 8; ++i) bits = (bits << 8) | b[i];
            Obj* o = make(Kind::Float);
            std::memcpy(&o->f, &bits, sizeof bits);
            push(o);
            break;
        }
        case 'X':
        case 0x8c:
        case 0x8d: {
            const uint64_t n  = uint(op == 'X' ? 4 : op == 0x8c ? 1 : 8);
            const uint8_t* at = take(n);
            push(make_str(std::string(reinterpret_cast<const char*>(at), n)));
            break;
        }
        case ')':
            push(make_tuple({}));
            break;
        case 't':
            push(make_tuple(pop_mark()));
            break;
        case 0x85:
        case 0x86:
        case 0x87: {
            const size_t n = op - 0x84u;
            std::vector<Obj*> items(n);
            for (size_t i = n; i-- > 0;) items[i] = pop();
            push(make_tuple(std::move(items)));
            break;
        }
        case ']':
            push(make(Kind::List));
            break;
        case 'l': {
            Obj* l   = make(Kind::List);
            l->items = pop_mark();
            push(l);
            break;
        }
        case 'a': {
            Obj* v = pop();
            append_items(top(), {v});
            break;
        }
        case 'e': {
            std::vector<Obj*> items = pop_mark();
            append_items(top(), items);
            break;
        }
        case '}':
            push(make(Kind::Dict));
            break;
        case 'd': {
            Obj* d = make(Kind::Dict);
            set_items(d, pop_mark());
            push(d);
            break;
        }
        case 's': {
            Obj* v = pop();
            Obj* k = pop();
            set_items(top(), {k, v});
            break;
        }
        case 'u': {
            std::vector<Obj*> kv = pop_mark();
            set_items(top(), kv);
            break;
        }
        case 'q':
            memo_put(uint(1));
            break;
        case 'r':
            memo_put(uint(4));
            break;
        case 0x94:
            memo_put(memo_.size());
            break;
        case 'h':
            push(memo_get(uint(1)));
            break;
        case 'j':
            push(memo_get(uint(4)));
            break;
        case 'c': {
            const std::string module = line();
            const std::string name   = line();
            push(global(module, name));
            break;
        }
        case 0x93: {
            Obj* name   = pop();
            Obj* module = pop();
            if (name->kind != Kind::Str || module->kind != Kind::Str)
                error("STACK_GLOBAL needs two strs");
            push(global(module->s, name->s));
            break;
        }
        case 'R': {
            Obj* args     = pop();
            Obj* callable = pop();
            push(reduce(callable, args));
            break;
        }
        case 'b': { // BUILD: only the `_metadata` attribute dict torch puts on state-dict
                    // OrderedDicts
            Obj* state = pop();
            Obj* obj   = top();
            if (obj->kind != Kind::Dict || (state->kind != Kind::Dict && state->kind != Kind::None))
                error("BUILD of a ", kind_name(obj->kind), " with a ", kind_name(state->kind),
                      " state is not allowed");
            break;
        }
        case 'Q':
            push(persistent_load(pop()));
            break;
        default: {
            const char* name       = opcode_name(op);
            static const char* hex = "0123456789abcdef";
            const std::string code = std::string("0x") + hex[op >> 4] + hex[op & 15];
            if (name) error("opcode ", name, " (", code, ") is outside the state-dict subset");
            error("unknown opcode ", code);
        }
        }
    }

    static constexpr size_t kMaxMemo = 1u << 24;

    const uint8_t* p_;
    size_t size_;
    size_t pos_   = 0;
    size_t op_at_ = 0;
    uint8_t op_   = 0;
    const std::string& where_;
    const std::map<std::string, const ZipEntry*>& records_;
    std::vector<std::unique_ptr<Obj>> arena_;
    std::vector<Obj*> stack_;
    std::vector<size_t> marks_;
    std::unordered_map<uint64_t, Obj*> memo_;
    std::map<std::string, Obj*> storages_;

public:
    // Turns the result into plain tensor records (archive-relative offsets).
    std::vector<TorchZipTensor> tensors(Obj* root) {
        if (root->kind != Kind::Dict)
            fail(where_, ": data.pkl holds a ", kind_name(root->kind),
                 ", not a state dict (a dict of name -> tensor)");
        std::vector<TorchZipTensor> out;
        std::set<std::string> names;
        for (const auto& [k, v] : root->entries) {
            if (k->kind != Kind::Str)
                fail(where_, ": state dict key is a ", kind_name(k->kind), ", not a str");
            if (v->kind != Kind::Tensor)
                fail(where_, ": state dict entry \"", printable(k->s), "\" is a ",
                     kind_name(v->kind),
                     ", not a tensor (nested checkpoints such as {\"state_dict\": ...} are not "
                     "supported)");
            if (!names.insert(k->s).second)
                fail(where_, ": state dict key \"", printable(k->s), "\" appears twice");
            const uint64_t esize = dtype_size(v->dtype);
            TorchZipTensor t;
            t.name    = k->s;
            t.dtype   = v->dtype;
            t.shape   = v->shape;
            t.strides = v->strides;
            t.offset =
                v->storage->record->data_offset + static_cast<uint64_t>(v->storage_offset) * esize;
            t.storage_bytes =
                (v->storage->numel - static_cast<uint64_t>(v->storage_offset)) * esize;
            t.storage_key = v->storage->s;
            out.push_back(std::move(t));
        }
        return out;
    }
};

} // namespace

std::vector<TorchZipTensor> read_torch_zip_bytes(const uint8_t* bytes, size_t size,
                                                 const std::string& where) {
    // torch.save's pre-1.6 format is a bare pickle stream (magic number first), not a zip.
    if (size >= 2 && bytes[0] == 0x80 && bytes[1] <= 5)
        fail(where, ": legacy (pre-1.6, non-zip) torch.save format is not supported; re-save it "
                    "with a current torch.save");
    const std::vector<ZipEntry> entries = read_zip_entries(bytes, size, where);

    // The archive folder: the one holding data.pkl (any name; torch uses the file's stem).
    std::string prefix;
    const ZipEntry* pickle = nullptr;
    for (const auto& e : entries) {
        const size_t slash = e.name.find('/');
        if (slash != std::string::npos &&
            e.name.compare(slash, std::string::npos, "/data.pkl") == 0) {
            if (pickle) fail(where, ": the archive holds more than one data.pkl");
            pickle = &e;
            prefix = e.name.substr(0, slash + 1);
        }
    }
    if (!pickle) fail(where, ": no <archive>/data.pkl record: not a torch.save checkpoint");

    std::map<std::string, const ZipEntry*> records; // storage key -> data/<key>
    const std::string data_dir = prefix + "data/";
    for (const auto& e : entries) {
        if (e.name.compare(0, data_dir.size(), data_dir) == 0 && e.name.size() > data_dir.size())
            records[e.name.substr(data_dir.size())] = &e;
        if (e.name == prefix + "byteorder") {
            const std::string order(reinterpret_cast<const char*>(bytes + e.data_offset),
                                    static_cast<size_t>(e.size));
            if (order != "little")
                fail(where, ": byte order \"", printable(order),
                     "\" is not supported (little only)");
        }
    }

    Unpickler unpickler(bytes + pickle->data_offset, static_cast<size_t>(pickle->size), where,
                        records);
    Obj* root = unpickler.run();
    return unpickler.tensors(root);
}

} // namespace glamm
