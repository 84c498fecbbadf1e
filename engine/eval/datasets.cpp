// Benchmark dataset readers (GranD-f GCG, REFER / synth refseg, COCO / synth region captions) and
// a plain-data pickle reader for REFER's refs(*).p.
#include "eval/datasets.h"

#include "core/atomic_file.h"
#include "core/error.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <set>

namespace glamm::eval {

// ref: mbzuai-oryx/groundingLMM eval/gcg/evaluate.py (GT file names, caption-GT image order),
//      eval/ddp.py RegionCapDDP (one region per image entry, bbox_to_x1y1x2y2),
//      dataset/utils/refcoco_refer.py (REFER: instances.json, refs(splitBy).p, getRefIds(split)),
//      dataset/segm_datasets/RefCOCO_Segm_ds.py (sentences of a ref -> its ann's mask);
//      Python Lib/pickletools.py (opcodes)

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// ---------------------------------------------------------------------------------------------
// Plain-data unpickler. Containers are shared nodes so that the memo holds references (a list is
// memoised empty and filled afterwards by APPENDS), converted to JSON at STOP.

struct Node;
using NodePtr = std::shared_ptr<Node>;
struct Node {
    enum Kind { Scalar, List, Tuple, Dict, Mark } kind = Scalar;
    json value; // Scalar
    std::vector<NodePtr> items;
    std::vector<std::pair<NodePtr, NodePtr>> entries;
};

// Nesting deeper than this is refused (and catches self-referencing containers).
constexpr int kMaxPickleDepth = 200;

class PlainUnpickler {
public:
    PlainUnpickler(const std::string& bytes, std::string where)
        : b_(bytes), where_(std::move(where)) {}

    json run() {
        for (;;) {
            at_              = pos_;
            const uint8_t op = byte();
            if (op == '.') {
                if (stack_.size() != 1) error("STOP with ", stack_.size(), " items on the stack");
                return to_json(stack_.back(), 0);
            }
            step(op);
        }
    }

private:
    template <class... A> [[noreturn]] void error(A&&... args) {
        fail(where_, ": pickle byte ", at_, ": ", std::forward<A>(args)...);
    }

    uint8_t byte() {
        if (pos_ >= b_.size()) error("truncated pickle (no STOP)");
        return uint8_t(b_[pos_++]);
    }
    std::string take(uint64_t n) {
        if (n > b_.size() - pos_) error("truncated pickle (", n, " bytes announced)");
        std::string s = b_.substr(pos_, size_t(n));
        pos_ += size_t(n);
        return s;
    }
    uint64_t le(int n) {
        uint64_t v = 0;
        for (int i = 0; i < n; ++i) v |= uint64_t(byte()) << (8 * i);
        return v;
    }
    std::string line() {
        const size_t nl = b_.find('\n', pos_);
        if (nl == std::string::npos) error("truncated pickle (text argument without newline)");
        std::string s = b_.substr(pos_, nl - pos_);
        pos_          = nl + 1;
        if (!s.empty() && s.back() == '\r') s.pop_back();
        return s;
    }

    static NodePtr scalar(json v) {
        auto n   = std::make_shared<Node>();
        n->value = std::move(v);
        return n;
    }
    static NodePtr container(Node::Kind k) {
        auto n  = std::make_shared<Node>();
        n->kind = k;
        return n;
    }
    void push(NodePtr n) { stack_.push_back(std::move(n)); }
    NodePtr pop() {
        if (stack_.empty() || stack_.back()->kind == Node::Mark) error("stack underflow");
        NodePtr n = stack_.back();
        stack_.pop_back();
        return n;
    }
    NodePtr& top() {
        if (stack_.empty() || stack_.back()->kind == Node::Mark) error("stack underflow");
        return stack_.back();
    }
    // Everything above the topmost MARK, removing the mark.
    std::vector<NodePtr> pop_mark() {
        size_t m = stack_.size();
        while (m > 0 && stack_[m - 1]->kind != Node::Mark) --m;
        if (m == 0) error("no MARK on the stack");
        std::vector<NodePtr> items(stack_.begin() + long(m), stack_.end());
        stack_.resize(m - 1);
        return items;
    }
    void memo_put(uint64_t i) {
        if (stack_.empty()) error("memo put on an empty stack");
        memo_[i] = stack_.back();
    }
    NodePtr memo_get(uint64_t i) {
        const auto it = memo_.find(i);
        if (it == memo_.end()) error("memo key ", i, " was never stored");
        return it->second;
    }
    void append(const NodePtr& list, std::vector<NodePtr> items) {
        if (list->kind != Node::List) error("APPEND to something that is not a list");
        for (auto& i : items) list->items.push_back(std::move(i));
    }
    void set_items(const NodePtr& dict, const std::vector<NodePtr>& kv) {
        if (dict->kind != Node::Dict) error("SETITEM on something that is not a dict");
        if (kv.size() % 2) error("SETITEMS with an odd number of items");
        for (size_t i = 0; i < kv.size(); i += 2) dict->entries.emplace_back(kv[i], kv[i + 1]);
    }
    static int64_t parse_int(const std::string& s, bool* ok) {
        char* end    = nullptr;
        const auto v = std::strtoll(s.c_str(), &end, 10);
        *ok          = !s.empty() && end == s.c_str() + s.size();
        return v;
    }
    static void put_utf8(std::string& out, uint32_t cp) {
        if (cp < 0x80) {
            out += char(cp);
        } else if (cp < 0x800) {
            out += char(0xC0 | (cp >> 6));
            out += char(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += char(0xE0 | (cp >> 12));
            out += char(0x80 | ((cp >> 6) & 0x3F));
            out += char(0x80 | (cp & 0x3F));
        } else {
            out += char(0xF0 | (cp >> 18));
            out += char(0x80 | ((cp >> 12) & 0x3F));
            out += char(0x80 | ((cp >> 6) & 0x3F));
            out += char(0x80 | (cp & 0x3F));
        }
    }
    // Protocol 0 STRING argument: a Python repr literal ('...' or "...") with backslash escapes.
    std::string repr_string(const std::string& s) {
        if (s.size() < 2 || (s[0] != '\'' && s[0] != '"') || s.back() != s[0])
            error("STRING argument is not a quoted literal");
        std::string out;
        for (size_t i = 1; i + 1 < s.size(); ++i) {
            if (s[i] != '\\') {
                out += s[i];
                continue;
            }
            if (++i + 1 > s.size() - 1) error("STRING ends inside an escape");
            const char c = s[i];
            switch (c) {
            case 'n':
                out += '\n';
                break;
            case 't':
                out += '\t';
                break;
            case 'r':
                out += '\r';
                break;
            case '\\':
                out += '\\';
                break;
            case '\'':
                out += '\'';
                break;
            case '"':
                out += '"';
                break;
            case 'x': {
                if (i + 2 > s.size() - 2) error("bad \\x escape");
                out += char(std::stoi(s.substr(i + 1, 2), nullptr, 16));
                i += 2;
                break;
            }
            default:
                if (c >= '0' && c <= '7') { // octal, up to three digits
                    int v = 0, k = 0;
                    while (k < 3 && i < s.size() - 1 && s[i] >= '0' && s[i] <= '7')
                        v = v * 8 + (s[i++] - '0'), ++k;
                    --i;
                    out += char(v);
                } else {
                    out += '\\';
                    out += c;
                }
            }
        }
        return out;
    }
    // Protocol 0 UNICODE argument: raw-unicode-escape (\uXXXX, \UXXXXXXXX; other bytes Latin-1).
    std::string raw_unicode(const std::string& s) {
        std::string out;
        for (size_t i = 0; i < s.size(); ++i) {
            if (s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == 'u' || s[i + 1] == 'U')) {
                const size_t n = s[i + 1] == 'u' ? 4 : 8;
                if (i + 2 + n > s.size()) error("bad \\u escape");
                put_utf8(out, uint32_t(std::stoul(s.substr(i + 2, n), nullptr, 16)));
                i += 1 + n;
            } else {
                put_utf8(out, uint8_t(s[i]));
            }
        }
        return out;
    }

    void step(uint8_t op) {
        switch (op) {
        case 0x80: // PROTO
            if (byte() > 5) error("pickle protocol above 5");
            break;
        case 0x95:
            le(8);
            break; // FRAME: a length hint only
        case '(':
            push(container(Node::Mark));
            break;
        case 'N':
            push(scalar(nullptr));
            break;
        case 0x88:
            push(scalar(true));
            break;
        case 0x89:
            push(scalar(false));
            break;
        case 'K':
            push(scalar(int64_t(byte())));
            break;
        case 'M':
            push(scalar(int64_t(le(2))));
            break;
        case 'J':
            push(scalar(int64_t(int32_t(uint32_t(le(4))))));
            break;
        case 0x8a:   // LONG1
        case 0x8b: { // LONG4
            const uint64_t n = op == 0x8a ? byte() : le(4);
            if (n > 8) error("integer wider than 64 bits");
            const std::string raw = take(n);
            uint64_t v            = 0;
            for (size_t i = 0; i < raw.size(); ++i) v |= uint64_t(uint8_t(raw[i])) << (8 * i);
            if (n > 0 && n < 8 && (uint8_t(raw.back()) & 0x80)) v |= ~uint64_t(0) << (8 * n);
            push(scalar(int64_t(v)));
            break;
        }
        case 'G': { // BINFLOAT, big-endian
            uint64_t bits = 0;
            for (int i = 0; i < 8; ++i) bits = (bits << 8) | byte();
            double d;
            std::memcpy(&d, &bits, sizeof d);
            push(scalar(d));
            break;
        }
        case 'I': { // INT (protocol 0); "00"/"01" are False/True
            const std::string s = line();
            if (s == "00" || s == "01") {
                push(scalar(s == "01"));
                break;
            }
            bool ok      = false;
            const auto v = parse_int(s, &ok);
            if (!ok) error("bad INT \"", s, "\"");
            push(scalar(v));
            break;
        }
        case 'L': { // LONG (protocol 0): "123L"
            std::string s = line();
            if (!s.empty() && s.back() == 'L') s.pop_back();
            bool ok      = false;
            const auto v = parse_int(s, &ok);
            if (!ok) error("bad LONG \"", s, "\"");
            push(scalar(v));
            break;
        }
        case 'F': { // FLOAT (protocol 0)
            const std::string s = line();
            char* end           = nullptr;
            const double v      = std::strtod(s.c_str(), &end);
            if (s.empty() || end != s.c_str() + s.size()) error("bad FLOAT \"", s, "\"");
            push(scalar(v));
            break;
        }
        case 'S':
            push(scalar(repr_string(line())));
            break;
        case 'V':
            push(scalar(raw_unicode(line())));
            break;
        case 'U':    // SHORT_BINSTRING
        case 'C':    // SHORT_BINBYTES
        case 0x8c: { // SHORT_BINUNICODE
            push(scalar(take(byte())));
            break;
        }
        case 'T':   // BINSTRING
        case 'B':   // BINBYTES
        case 'X': { // BINUNICODE
            push(scalar(take(le(4))));
            break;
        }
        case 0x8d: // BINUNICODE8
        case 0x8e: // BINBYTES8
            push(scalar(take(le(8))));
            break;
        case ']':
            push(container(Node::List));
            break;
        case '}':
            push(container(Node::Dict));
            break;
        case ')':
            push(container(Node::Tuple));
            break;
        case 'l': {
            auto n   = container(Node::List);
            n->items = pop_mark();
            push(n);
            break;
        }
        case 't': {
            auto n   = container(Node::Tuple);
            n->items = pop_mark();
            push(n);
            break;
        }
        case 'd': {
            auto n = container(Node::Dict);
            set_items(n, pop_mark());
            push(n);
            break;
        }
        case 0x85:
        case 0x86:
        case 0x87: { // TUPLE1..3
            const size_t k = size_t(op - 0x84);
            auto n         = container(Node::Tuple);
            n->items.resize(k);
            for (size_t i = k; i-- > 0;) n->items[i] = pop();
            push(n);
            break;
        }
        case 'a': {
            NodePtr v = pop();
            append(top(), {v});
            break;
        }
        case 'e': {
            auto items = pop_mark();
            append(top(), std::move(items));
            break;
        }
        case 's': {
            NodePtr v = pop();
            NodePtr k = pop();
            set_items(top(), {k, v});
            break;
        }
        case 'u': {
            auto kv = pop_mark();
            set_items(top(), kv);
            break;
        }
        case '0':
            pop();
            break;
        case '1':
            pop_mark();
            break;
        case '2':
            push(top());
            break;
        case 'p': {
            bool ok      = false;
            const auto i = parse_int(line(), &ok);
            if (!ok || i < 0) error("bad PUT index");
            memo_put(uint64_t(i));
            break;
        }
        case 'q':
            memo_put(byte());
            break;
        case 'r':
            memo_put(le(4));
            break;
        case 0x94:
            memo_put(memo_.size());
            break; // MEMOIZE
        case 'g': {
            bool ok      = false;
            const auto i = parse_int(line(), &ok);
            if (!ok || i < 0) error("bad GET index");
            push(memo_get(uint64_t(i)));
            break;
        }
        case 'h':
            push(memo_get(byte()));
            break;
        case 'j':
            push(memo_get(le(4)));
            break;
        default: {
            const bool printable = op >= 0x20 && op < 0x7f;
            error("opcode ",
                  printable ? std::string(1, char(op)) : std::string("0x") + cat(std::hex, int(op)),
                  " is outside plain data (globals, objects and extensions are refused)");
        }
        }
    }

    json to_json(const NodePtr& n, int depth) {
        if (depth > kMaxPickleDepth)
            error("data nested deeper than ", kMaxPickleDepth, " (or a cycle)");
        switch (n->kind) {
        case Node::Scalar:
            return n->value;
        case Node::List:
        case Node::Tuple: {
            json a = json::array();
            for (const auto& i : n->items) a.push_back(to_json(i, depth + 1));
            return a;
        }
        case Node::Dict: {
            json o = json::object();
            for (const auto& [k, v] : n->entries) {
                const json key                                           = to_json(k, depth + 1);
                o[key.is_string() ? key.get<std::string>() : key.dump()] = to_json(v, depth + 1);
            }
            return o;
        }
        case Node::Mark:
            break;
        }
        error("MARK left on the stack");
    }

    const std::string& b_;
    std::string where_;
    size_t pos_ = 0, at_ = 0;
    std::vector<NodePtr> stack_;
    std::map<uint64_t, NodePtr> memo_;
};

// ---------------------------------------------------------------------------------------------

json read_json_file(const fs::path& path) {
    const std::string text = read_file(path.string());
    try {
        return json::parse(text);
    } catch (const std::exception& e) {
        fail("cannot parse ", path.string(), ": ", e.what());
    }
}

std::string id_string(const json& id) {
    return id.is_string() ? id.get<std::string>() : id.dump();
}

// doc[key] by reference (an empty array when absent): json::value() would return a copy, and
// the readers keep pointers into the documents.
const json& list_field(const json& doc, const char* key) {
    static const json empty = json::array();
    const auto it           = doc.find(key);
    return it == doc.end() ? empty : *it;
}

bool ends_with(const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// The image file of an "images" entry: file_name under the images folder (as given, then its
// base name), under the data folder, or <id>.{jpg,png,jpeg} in the images folder.
std::string resolve_image(const json& img, const fs::path& data_dir, const fs::path& images_dir) {
    std::vector<fs::path> tried;
    if (img.contains("file_name")) {
        const fs::path f = img["file_name"].get<std::string>();
        tried            = {images_dir / f, images_dir / f.filename(), data_dir / f};
    } else {
        const std::string id = id_string(img.at("id"));
        for (const char* ext : {".jpg", ".png", ".jpeg"}) tried.push_back(images_dir / (id + ext));
    }
    for (const auto& p : tried)
        if (fs::is_regular_file(p)) return p.string();
    std::string list;
    for (const auto& p : tried) list += (list.empty() ? "" : ", ") + p.string();
    fail("image of \"", id_string(img.at("id")), "\" not found (tried ", list,
         "); give the image folder with --images");
}

// `doc` with only the images (and annotations of images) in `keep`; "scenes" dropped.
json restrict_to(const json& doc, const std::set<std::string>& keep) {
    json out = json::object();
    for (const auto& [k, v] : doc.items())
        if (k != "images" && k != "annotations" && k != "scenes") out[k] = v;
    out["images"]      = json::array();
    out["annotations"] = json::array();
    for (const auto& img : list_field(doc, "images"))
        if (keep.count(id_string(img.at("id")))) out["images"].push_back(img);
    for (const auto& ann : list_field(doc, "annotations"))
        if (keep.count(id_string(ann.at("image_id")))) out["annotations"].push_back(ann);
    return out;
}

size_t limited(size_t n, int64_t limit) {
    return limit < 0 ? n : std::min(n, size_t(limit));
}

fs::path images_dir_for(const DatasetOptions& o, const fs::path& data_dir) {
    return o.images.empty() ? data_dir : fs::path(o.images);
}

bool is_synth(const json& doc) {
    return doc.contains("info") && doc["info"].is_object() &&
           doc["info"].value("generator", "") == "glamm synth";
}

} // namespace

json read_plain_pickle(const std::string& bytes, const std::string& where) {
    return PlainUnpickler(bytes, where).run();
}

// ---------------------------------------------------------------------------------------------
// GCG

GcgDataset read_gcg_dataset(const DatasetOptions& o) {
    const fs::path data(o.data);
    std::vector<fs::path> files;
    fs::path data_dir;
    if (fs::is_directory(data)) {
        data_dir = data;
        if (fs::is_regular_file(data / "annotations.json")) {
            files = {data / "annotations.json"};
        } else {
            const fs::path cap  = data / (o.split + "_gcg_coco_caption_gt.json");
            const fs::path mask = data / (o.split + "_gcg_coco_mask_gt.json");
            if (!fs::is_regular_file(cap) || !fs::is_regular_file(mask))
                fail(o.data, ": neither annotations.json nor ", cap.filename().string(), " + ",
                     mask.filename().string(), " (GranD-f split \"", o.split, "\")");
            files = {cap, mask};
        }
    } else if (fs::is_regular_file(data)) {
        data_dir               = data.parent_path();
        const std::string name = data.filename().string();
        files                  = {data};
        for (const auto& [mine, other] :
             {std::pair<std::string, std::string>{"_caption_gt.json", "_mask_gt.json"},
              {"_mask_gt.json", "_caption_gt.json"}}) {
            if (!ends_with(name, mine)) continue;
            const fs::path partner = data_dir / (name.substr(0, name.size() - mine.size()) + other);
            if (!fs::is_regular_file(partner))
                fail(o.data, ": its partner ", partner.string(), " is missing");
            files.push_back(partner);
            if (mine == "_mask_gt.json") std::swap(files[0], files[1]); // caption GT first
        }
    } else {
        fail(o.data, " does not exist");
    }
    std::vector<json> docs;
    for (const auto& f : files) docs.push_back(read_json_file(f));

    // Image order: the caption GT's "images" (evaluate.py), then any other file's.
    std::vector<const json*> images;
    std::set<std::string> seen;
    for (const auto& d : docs)
        for (const auto& img : list_field(d, "images"))
            if (seen.insert(id_string(img.at("id"))).second) images.push_back(&img);
    std::map<std::string, std::string> answers;
    for (const auto& d : docs)
        for (const auto& ann : list_field(d, "annotations"))
            if (ann.contains("gcg_caption") && !answers.count(id_string(ann.at("image_id"))))
                answers[id_string(ann["image_id"])] = ann["gcg_caption"].get<std::string>();

    const fs::path images_dir = images_dir_for(o, data_dir);
    GcgDataset out;
    std::set<std::string> keep;
    for (size_t i = 0; i < limited(images.size(), o.limit); ++i) {
        const json& img = *images[i];
        GcgSample s;
        s.image_id   = id_string(img.at("id"));
        s.image_path = resolve_image(img, data_dir, images_dir);
        if (answers.count(s.image_id)) s.gcg_answer = answers[s.image_id];
        keep.insert(s.image_id);
        out.samples.push_back(std::move(s));
    }
    for (const auto& d : docs) out.gt.push_back(restrict_to(d, keep));
    return out;
}

// ---------------------------------------------------------------------------------------------
// Referring segmentation

namespace {

// REFER getRefIds(split=...) selection.
bool in_split(const std::string& ref_split, const std::string& split) {
    if (split == "testA" || split == "testB" || split == "testC")
        return ref_split.find(split.back()) != std::string::npos;
    if (split == "testAB" || split == "testBC" || split == "testAC")
        return ref_split == split; // not used by GLaMM
    if (split == "test") return ref_split.find("test") != std::string::npos;
    return ref_split == split;
}

json read_refs(const fs::path& path) {
    if (path.extension() == ".json") return read_json_file(path);
    return read_plain_pickle(read_file(path.string()), path.string());
}

RefsegDataset refer_dataset(const fs::path& refs_path, const DatasetOptions& o) {
    const fs::path dir       = refs_path.parent_path();
    const fs::path instances = dir / "instances.json";
    if (!fs::is_regular_file(instances))
        fail(refs_path.string(), ": instances.json is not beside it (REFER layout)");
    const json inst = read_json_file(instances);
    const json refs =
        with_context("reading " + refs_path.string(), [&] { return read_refs(refs_path); });
    if (!refs.is_array()) fail(refs_path.string(), ": expected a list of refs");

    std::map<int64_t, const json*> images, anns;
    for (const auto& img : inst.at("images")) images[img.at("id").get<int64_t>()] = &img;
    for (const auto& a : inst.at("annotations")) anns[a.at("id").get<int64_t>()] = &a;

    // Samples grouped by image in order of first appearance.
    std::vector<int64_t> image_order;
    std::map<int64_t, std::vector<RefsegSample>> by_image;
    std::map<int64_t, int64_t> target_ann; // sent_id -> ann id
    for (const auto& ref : refs) {
        if (!in_split(ref.at("split").get<std::string>(), o.split)) continue;
        const int64_t image_id = ref.at("image_id").get<int64_t>();
        const int64_t ann_id   = ref.at("ann_id").get<int64_t>();
        if (!images.count(image_id))
            fail("ref ", ref.value("ref_id", int64_t(-1)), ": image ", image_id,
                 " not in instances.json");
        if (!anns.count(ann_id))
            fail("ref ", ref.value("ref_id", int64_t(-1)), ": annotation ", ann_id,
                 " not in instances.json");
        if (!by_image.count(image_id)) image_order.push_back(image_id);
        for (const auto& sent : ref.at("sentences")) {
            RefsegSample s;
            s.image_id          = std::to_string(image_id);
            s.sentence          = sent.at("sent").get<std::string>();
            s.gt_id             = sent.at("sent_id").get<int64_t>();
            target_ann[s.gt_id] = ann_id;
            by_image[image_id].push_back(std::move(s));
        }
    }
    const fs::path images_dir = images_dir_for(o, dir);
    RefsegDataset out;
    out.gt = {{"images", json::array()}, {"annotations", json::array()}};
    std::map<std::string, std::string> paths;
    for (const int64_t img : image_order) {
        for (auto& s : by_image[img]) {
            if (o.limit >= 0 && int64_t(out.samples.size()) >= o.limit) break;
            if (!paths.count(s.image_id)) {
                const json& entry = *images[img];
                paths[s.image_id] = resolve_image(entry, dir, images_dir);
                out.gt["images"].push_back(
                    {{"id", img}, {"height", entry.at("height")}, {"width", entry.at("width")}});
            }
            s.image_path = paths[s.image_id];
            out.gt["annotations"].push_back(
                {{"id", s.gt_id},
                 {"image_id", img},
                 {"segmentation", anns[target_ann[s.gt_id]]->at("segmentation")}});
            out.samples.push_back(s);
        }
    }
    return out;
}

RefsegDataset synth_refseg(const fs::path& path, const DatasetOptions& o) {
    const json doc            = read_json_file(path);
    const fs::path dir        = path.parent_path();
    const fs::path images_dir = images_dir_for(o, dir);
    std::map<std::string, const json*> images;
    for (const auto& img : list_field(doc, "images")) images[id_string(img.at("id"))] = &img;
    std::vector<std::string> order;
    std::map<std::string, std::vector<RefsegSample>> by_image;
    for (const auto& ann : doc.at("annotations")) {
        RefsegSample s;
        s.image_id = id_string(ann.at("image_id"));
        s.sentence = ann.at("sentence").get<std::string>();
        s.gt_id    = ann.at("id").get<int64_t>();
        if (!images.count(s.image_id))
            fail(path.string(), ": image \"", s.image_id, "\" is not in \"images\"");
        if (!by_image.count(s.image_id)) order.push_back(s.image_id);
        by_image[s.image_id].push_back(std::move(s));
    }
    RefsegDataset out;
    std::set<int64_t> keep_ids;
    std::set<std::string> keep_images;
    for (const auto& img : order) {
        for (auto& s : by_image[img]) {
            if (o.limit >= 0 && int64_t(out.samples.size()) >= o.limit) break;
            s.image_path = resolve_image(*images[img], dir, images_dir);
            keep_ids.insert(s.gt_id);
            keep_images.insert(img);
            out.samples.push_back(s);
        }
    }
    out.gt    = restrict_to(doc, keep_images);
    json anns = json::array();
    for (const auto& a : out.gt["annotations"])
        if (keep_ids.count(a.at("id").get<int64_t>())) anns.push_back(a);
    out.gt["annotations"] = anns;
    return out;
}

} // namespace

RefsegDataset read_refseg_dataset(const DatasetOptions& o) {
    const fs::path data(o.data);
    fs::path file = data;
    if (fs::is_directory(data)) {
        if (fs::is_regular_file(data / "refseg.json")) {
            file = data / "refseg.json";
        } else {
            std::vector<fs::path> refs;
            for (const auto& e : fs::directory_iterator(data)) {
                const std::string n = e.path().filename().string();
                if (n.rfind("refs", 0) == 0 && (ends_with(n, ".p") || ends_with(n, ".json")))
                    refs.push_back(e.path());
            }
            if (refs.size() != 1)
                fail(o.data, ": ",
                     refs.empty() ? "no refseg.json and no refs(*).p" : "several refs files",
                     "; name the refs file (e.g. --data ", (data / "refs(unc).p").string(), ")");
            file = refs[0];
        }
    } else if (!fs::is_regular_file(data)) {
        fail(o.data, " does not exist");
    }
    if (file.extension() == ".json") {
        // A synth/COCO-style file is an object with "annotations"; a converted refs list an array.
        const json probe = read_json_file(file);
        if (probe.is_object()) return synth_refseg(file, o);
    }
    return refer_dataset(file, o);
}

// ---------------------------------------------------------------------------------------------
// Region captioning

RegcapDataset read_regcap_dataset(const DatasetOptions& o) {
    fs::path file(o.data);
    if (fs::is_directory(file)) file /= "regcap.json";
    if (!fs::is_regular_file(file)) fail(file.string(), " does not exist");
    const json doc            = read_json_file(file);
    const fs::path dir        = file.parent_path();
    const fs::path images_dir = images_dir_for(o, dir);
    const bool xyxy           = is_synth(doc);
    // ref: eval/region_captioning/infer.py RegionCapDDP reads coco.anns[image_id]: the
    // annotation whose *id* is the image's id (one region per image entry in GLaMM's files).
    // Files where no annotation has that id (glamm synth's) take the first one on the image.
    std::map<std::string, const json*> by_id, first_on_image;
    for (const auto& a : list_field(doc, "annotations")) {
        if (a.contains("id")) by_id.emplace(id_string(a.at("id")), &a);
        first_on_image.emplace(id_string(a.at("image_id")), &a);
    }
    RegcapDataset out;
    std::set<std::string> keep;
    const json& images = doc.at("images");
    for (size_t i = 0; i < limited(images.size(), o.limit); ++i) {
        const json& img = images[i];
        RegcapSample s;
        s.image_id      = id_string(img.at("id"));
        const json* ann = nullptr;
        if (const auto it = by_id.find(s.image_id); it != by_id.end())
            ann = it->second;
        else if (const auto on = first_on_image.find(s.image_id); on != first_on_image.end())
            ann = on->second;
        const json* bb = ann && ann->contains("bbox") ? &ann->at("bbox")
                         : img.contains("bbox")       ? &img.at("bbox")
                                                      : nullptr;
        if (!bb) fail(file.string(), ": region \"", s.image_id, "\" has no bbox");
        const auto b = bb->get<std::vector<double>>();
        if (b.size() != 4)
            fail(file.string(), ": region \"", s.image_id, "\" bbox needs 4 numbers");
        s.box        = xyxy ? std::array<double, 4>{b[0], b[1], b[2], b[3]}
                            : std::array<double, 4>{b[0], b[1], b[0] + b[2], b[1] + b[3]};
        s.image_path = resolve_image(img, dir, images_dir);
        keep.insert(s.image_id);
        out.samples.push_back(std::move(s));
    }
    out.gt = restrict_to(doc, keep);
    return out;
}

} // namespace glamm::eval
