// torch.save zip reader: the fixture files written by tests/data/make_bin_checkpoint.py, and
// hand-built archives/pickles for every way a .bin can be broken or hostile (one message each).
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/torch_zip.h"
#include "support/test_support.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

using namespace glamm;
namespace fs = std::filesystem;

namespace {

// ---- a tiny stored-zip writer (no ZIP64), enough to wrap hand-made pickles

void put(std::string& out, uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::string make_zip(const std::vector<std::pair<std::string, std::string>>& records) {
    std::string out, central;
    for (const auto& [name, data] : records) {
        const uint64_t offset = out.size();
        put(out, 0x04034b50, 4);
        put(out, 20, 2), put(out, 0, 2), put(out, 0, 2), put(out, 0, 2), put(out, 0, 2);
        put(out, 0, 4), put(out, data.size(), 4), put(out, data.size(), 4);
        put(out, name.size(), 2), put(out, 0, 2);
        out += name + data;
        put(central, 0x02014b50, 4);
        put(central, 20, 2), put(central, 20, 2), put(central, 0, 2), put(central, 0, 2);
        put(central, 0, 2), put(central, 0, 2), put(central, 0, 4);
        put(central, data.size(), 4), put(central, data.size(), 4);
        put(central, name.size(), 2), put(central, 0, 2), put(central, 0, 2), put(central, 0, 2);
        put(central, 0, 2), put(central, 0, 4), put(central, offset, 4);
        central += name;
    }
    const uint64_t cd_offset = out.size();
    out += central;
    put(out, 0x06054b50, 4), put(out, 0, 2), put(out, 0, 2);
    put(out, records.size(), 2), put(out, records.size(), 2);
    put(out, central.size(), 4), put(out, cd_offset, 4), put(out, 0, 2);
    return out;
}

// ---- a pickle builder with the opcodes torch.save uses

struct Pickle {
    std::string b = std::string("\x80\x02", 2);
    Pickle& op(char c) {
        b.push_back(c);
        return *this;
    }
    Pickle& str(const std::string& s) {
        b.push_back('X');
        put(b, s.size(), 4);
        b += s;
        return *this;
    }
    Pickle& i(int64_t v) { // BININT, or LONG1 for what does not fit 32 bits
        if (v >= INT32_MIN && v <= INT32_MAX) {
            b.push_back('J');
            put(b, static_cast<uint64_t>(v), 4);
        } else {
            b += "\x8a\x08";
            put(b, static_cast<uint64_t>(v), 8);
        }
        return *this;
    }
    Pickle& global(const std::string& module, const std::string& name) {
        b += "c" + module + "\n" + name + "\n";
        return *this;
    }
    Pickle& ints(const std::vector<int64_t>& v) {
        op('(');
        for (int64_t x : v) i(x);
        return op('t');
    }
    // _rebuild_tensor_v2(('storage', type, key, 'cpu', numel), offset, size, stride, False,
    // OrderedDict())
    Pickle& tensor(const std::string& type, const std::string& key, int64_t numel, int64_t offset,
                   const std::vector<int64_t>& size, const std::vector<int64_t>& stride) {
        global("torch._utils", "_rebuild_tensor_v2").op('(');
        op('(').str("storage").global("torch", type).str(key).str("cpu").i(numel).op('t').op('Q');
        i(offset).ints(size).ints(stride).op('\x89');
        global("collections", "OrderedDict").op(')').op('R');
        return op('t').op('R');
    }
    std::string done() { return b + "."; }
};

// A byte string from a literal, embedded NULs included.
template <size_t N> std::string B(const char (&s)[N]) {
    return std::string(s, N - 1);
}

std::string f32_bytes(const std::vector<float>& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

// A one-tensor archive "w" -> tensor(...) over data/0 holding `data`.
std::string archive(const std::string& pickle,
                    const std::string& data = f32_bytes({1, 2, 3, 4, 5, 6})) {
    return make_zip({{"arch/data.pkl", pickle}, {"arch/data/0", data}, {"arch/version", "3\n"}});
}

std::string one_tensor(const std::string& type, int64_t numel, int64_t offset,
                       const std::vector<int64_t>& size, const std::vector<int64_t>& stride) {
    Pickle p;
    p.op('}').str("w").tensor(type, "0", numel, offset, size, stride).op('s');
    return p.done();
}

std::vector<TorchZipTensor> parse(const std::string& bytes) {
    return read_torch_zip_bytes(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                                "t.bin");
}

std::string parse_error(const std::string& bytes) {
    return test::error_of([&] { parse(bytes); });
}

std::string open_error(const std::string& path) {
    return test::error_of([&] { Checkpoint::open(path); });
}

std::string read_all(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

#define EXPECT_HAS(haystack, needle)                                                               \
    EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

} // namespace

TEST(TorchZip, HandBuiltArchiveGivesStridedView) {
    const auto t = parse(archive(one_tensor("FloatStorage", 6, 1, {2, 2}, {1, 2})));
    ASSERT_EQ(t.size(), 1u);
    EXPECT_EQ(t[0].name, "w");
    EXPECT_EQ(t[0].dtype, DType::F32);
    EXPECT_EQ(t[0].shape, (std::vector<int64_t>{2, 2}));
    EXPECT_EQ(t[0].strides, (std::vector<int64_t>{1, 2}));
    EXPECT_EQ(t[0].storage_bytes, 5u * 4);
    EXPECT_EQ(t[0].storage_key, "0");
    // Local header 30 bytes + "arch/data.pkl" + pickle, then the data/0 header: offset by 1 float.
    const std::string bytes = archive(one_tensor("FloatStorage", 6, 1, {2, 2}, {1, 2}));
    float first             = 0;
    std::memcpy(&first, bytes.data() + t[0].offset, sizeof first);
    EXPECT_EQ(first, 2.0f);
}

TEST(TorchZip, ReadsFixturesOfEveryPickleProtocolAndZipFlavour) {
    // Protocol 4 (FRAME, MEMOIZE, SHORT_BINUNICODE, STACK_GLOBAL).
    Checkpoint p4 = Checkpoint::open(test::data_path("bin/proto4.bin"));
    ASSERT_EQ(p4.size(), 2u);
    EXPECT_TRUE(torch::equal(p4.tensor("a"), torch::arange(6, torch::kFloat).reshape({2, 3}).t()));
    EXPECT_EQ(p4.stored("a").strides, (std::vector<int64_t>{1, 3}));
    EXPECT_TRUE(torch::equal(p4.tensor("b"), torch::arange(4).to(torch::kBFloat16)));
    // Every size and offset in ZIP64 fields: same tensors as the shard it was re-zipped from.
    Checkpoint z64 = Checkpoint::open(test::data_path("bin/zip64.bin"));
    Checkpoint orig =
        Checkpoint::open(test::data_path("bin/release/pytorch_model-00002-of-00002.bin"));
    ASSERT_EQ(z64.names(), orig.names());
    for (const auto& name : orig.names()) {
        EXPECT_EQ(z64.stored(name).offset % 64, 0u) << name; // records stay 64-byte aligned
        EXPECT_TRUE(torch::equal(z64.tensor(name), orig.tensor(name))) << name;
    }
}

TEST(TorchZip, RefusesForbiddenGlobalsAndFormats) {
    const std::string evil = open_error(test::data_path("bin/evil.bin"));
    EXPECT_HAS(evil, "evil.bin");
    EXPECT_HAS(evil, "global \"os.system\" is not allowed");
    EXPECT_HAS(open_error(test::data_path("bin/compressed.bin")),
               "zip entry \"compressed/data.pkl\" is compressed (method 8)");
    EXPECT_HAS(open_error(test::data_path("bin/legacy.bin")),
               "legacy (pre-1.6, non-zip) torch.save format is not supported");
    // The same through STACK_GLOBAL (protocol 4 spelling).
    Pickle p;
    p.op('}').str("builtins").str("eval").op('\x93');
    EXPECT_HAS(parse_error(archive(p.done())), "global \"builtins.eval\" is not allowed");
}

TEST(TorchZip, RejectsTruncatedFiles) {
    const std::string shard =
        read_all(test::data_path("bin/release/pytorch_model-00002-of-00002.bin"));
    ASSERT_GT(shard.size(), 1000u);
    EXPECT_HAS(parse_error(shard.substr(0, shard.size() / 2)),
               "no zip end-of-central-directory record (not a zip archive, or truncated)");
    EXPECT_HAS(parse_error(shard.substr(0, 10)), "10 bytes is too short for a zip archive");
    EXPECT_HAS(parse_error(""), "0 bytes is too short for a zip archive");
    // A whole truncated file on disk: the message names it.
    const std::string dir = test::make_temp_dir("trunc-bin");
    test::write_bytes(dir + "/pytorch_model.bin", shard.substr(0, shard.size() - 100));
    const std::string msg = open_error(dir);
    EXPECT_HAS(msg, dir + "/pytorch_model.bin");
    EXPECT_HAS(msg, "truncated");
    // An end record whose central directory offset lies past the end of the file.
    std::string holed             = archive(one_tensor("FloatStorage", 6, 0, {6}, {1}));
    holed[holed.size() - 22 + 19] = 0x10;
    EXPECT_HAS(parse_error(holed),
               "lies outside the " + std::to_string(holed.size()) + "-byte file");
}

TEST(TorchZip, RejectsViewsOutsideTheirStorage) {
    // 6 floats stored; a [2,3] view at offset 1 reaches element 6.
    EXPECT_HAS(
        parse_error(archive(one_tensor("FloatStorage", 6, 1, {2, 3}, {3, 1}))),
        "tensor view (offset 1, reaching element 6) lies outside its storage \"0\" of 6 elements");
    // Strides that jump past the end.
    EXPECT_HAS(parse_error(archive(one_tensor("FloatStorage", 6, 0, {2, 2}, {5, 1}))),
               "lies outside its storage");
    // Storage claiming more elements than its record holds.
    EXPECT_HAS(parse_error(archive(one_tensor("FloatStorage", 7, 0, {7}, {1}))),
               "storage \"0\" claims 7 F32 elements but its record holds 24 bytes");
    EXPECT_HAS(parse_error(archive(one_tensor("DoubleStorage", 6, 0, {6}, {1}))),
               "claims 6 F64 elements but its record holds 24 bytes");
    // Offset past the end with an empty view is still outside.
    EXPECT_HAS(parse_error(archive(one_tensor("FloatStorage", 6, 7, {0}, {1}))),
               "lies outside its storage");
    // An empty view at the end is fine, and so is stride 0 (expand).
    EXPECT_EQ(parse(archive(one_tensor("FloatStorage", 6, 6, {0}, {1}))).size(), 1u);
    EXPECT_EQ(parse(archive(one_tensor("FloatStorage", 6, 5, {4, 3}, {0, 0}))).size(), 1u);
    // Overflowing strides (LONG1 values).
    EXPECT_HAS(parse_error(archive(one_tensor("FloatStorage", 6, 0, {5}, {int64_t{1} << 62}))),
               "tensor view overflows");
    EXPECT_HAS(parse_error(archive(one_tensor("FloatStorage", 6, 0, {2, 2}, {-1, 1}))),
               "stride holds a negative value -1");
    EXPECT_HAS(parse_error(archive(one_tensor("FloatStorage", 6, 0, {2}, {1, 1}))),
               "size has 1 dimensions but stride has 2");
}

TEST(TorchZip, RejectsMalformedPickles) {
    // A storage key with no data/<key> record.
    {
        Pickle p;
        p.op('}').str("w").tensor("FloatStorage", "7", 6, 0, {6}, {1}).op('s');
        EXPECT_HAS(parse_error(archive(p.done())), "storage \"7\" has no data/7 record");
    }
    // Opcodes outside the subset, named.
    EXPECT_HAS(parse_error(archive(B("\x80\x02") + "i__builtin__\nobject\n.")),
               "opcode INST (0x69) is outside the state-dict subset");
    EXPECT_HAS(parse_error(archive(B("\x80\x02\xff."))), "unknown opcode 0xff");
    EXPECT_HAS(parse_error(archive(B("\x80\x09}."))), "pickle protocol 9 is not supported");
    // Truncations inside data.pkl.
    EXPECT_HAS(parse_error(archive(B("\x80\x02}"))),
               "pickle ends without STOP (truncated data.pkl)");
    EXPECT_HAS(parse_error(archive(B("\x80\x02X\xff\x00\x00\x00"
                                     "ab"))),
               "(opcode BINUNICODE): needs 255 bytes but only 2 remain");
    EXPECT_HAS(parse_error(archive(B("\x80\x02") + "ctorch\nFloatSto")),
               "unterminated GLOBAL name");
    // Stack and memo misuse.
    EXPECT_HAS(parse_error(archive(B("\x80\x02s."))), "(opcode SETITEM): stack underflow");
    EXPECT_HAS(parse_error(archive(B("\x80\x02h\x05."))), "memo entry 5 was never stored");
    EXPECT_HAS(parse_error(archive(B("\x80\x02}(."))), "STOP with an open MARK");
    EXPECT_HAS(parse_error(archive(B("\x80\x02}}."))), "STOP with 2 objects on the stack");
    EXPECT_HAS(parse_error(archive(B("\x80\x02]X\x01\x00\x00\x00"
                                     "aNs."))),
               "SETITEM(S) on a list, not a dict");
    // A list that contains itself (reference cycle): rejected, and nothing leaks (ASan build).
    EXPECT_HAS(parse_error(archive(B("\x80\x02]q\x00h\x00"
                                     "a."))),
               "data.pkl holds a list");
    // Calling a storage type, or a non-callable.
    EXPECT_HAS(parse_error(archive(B("\x80\x02") + "ctorch\nFloatStorage\n)R.")),
               "calling torch.FloatStorage is not allowed");
    EXPECT_HAS(parse_error(archive(B("\x80\x02N)R."))), "REDUCE on a None, not a callable");
    // Persistent ids that are not torch storages.
    EXPECT_HAS(parse_error(archive(B("\x80\x02NQ."))), "persistent id is not ('storage'");
    {
        Pickle p;
        p.op('(')
            .str("storage")
            .global("collections", "OrderedDict")
            .str("0")
            .str("cpu")
            .i(6)
            .op('t')
            .op('Q');
        EXPECT_HAS(parse_error(archive(p.done())),
                   "names a storage type that is not a torch.*Storage");
    }
    // One storage seen as two dtypes.
    {
        Pickle p;
        p.op('}').str("a").tensor("FloatStorage", "0", 6, 0, {6}, {1}).op('s');
        p.str("b").tensor("IntStorage", "0", 6, 0, {6}, {1}).op('s');
        EXPECT_HAS(parse_error(archive(p.done())),
                   "storage \"0\" is referenced with two different types");
    }
}

TEST(TorchZip, RejectsWhatIsNotAFlatStateDict) {
    EXPECT_HAS(parse_error(archive(B("\x80\x02]."))),
               "data.pkl holds a list, not a state dict (a dict of name -> tensor)");
    {
        Pickle p;
        p.op('}')
            .str("state_dict")
            .op('}')
            .str("w")
            .tensor("FloatStorage", "0", 6, 0, {6}, {1})
            .op('s')
            .op('s');
        EXPECT_HAS(parse_error(archive(p.done())),
                   "state dict entry \"state_dict\" is a dict, not a tensor (nested checkpoints");
    }
    {
        Pickle p;
        p.op('}').i(3).tensor("FloatStorage", "0", 6, 0, {6}, {1}).op('s');
        EXPECT_HAS(parse_error(archive(p.done())), "state dict key is a int, not a str");
    }
    {
        Pickle p;
        p.op('}').str("w").tensor("FloatStorage", "0", 6, 0, {6}, {1}).op('s');
        p.str("w").tensor("FloatStorage", "0", 6, 0, {6}, {1}).op('s');
        EXPECT_HAS(parse_error(archive(p.done())), "state dict key \"w\" appears twice");
    }
    // BUILD only for the `_metadata` dict on an OrderedDict.
    {
        Pickle p;
        p.str("x").op('}').op('b');
        EXPECT_HAS(parse_error(archive(p.done())),
                   "BUILD of a str with a dict state is not allowed");
    }
    // No data.pkl at all / two of them.
    EXPECT_HAS(parse_error(make_zip({{"a/version", "3\n"}})),
               "no <archive>/data.pkl record: not a torch.save checkpoint");
    EXPECT_HAS(parse_error(make_zip({{"a/data.pkl", "\x80\x02}."}, {"b/data.pkl", "\x80\x02}."}})),
               "more than one data.pkl");
    EXPECT_HAS(parse_error(make_zip({{"a/data.pkl", "\x80\x02}."}, {"a/byteorder", "big"}})),
               "byte order \"big\" is not supported");
    // An empty state dict is a valid (empty) file.
    EXPECT_TRUE(parse(make_zip({{"a/data.pkl", "\x80\x02}."}})).empty());
}

TEST(TorchZip, RejectsBrokenZipStructures) {
    std::string z = archive(one_tensor("FloatStorage", 6, 0, {6}, {1}));
    // Local header offset of the first central entry pointing at garbage.
    const size_t cd = z.rfind(std::string("PK\x01\x02", 4), z.size() - 22);
    {
        std::string bad       = z;
        const size_t first_cd = z.find(std::string("PK\x01\x02", 4));
        bad[first_cd + 42]    = 5;
        EXPECT_HAS(parse_error(bad),
                   "zip entry \"arch/data.pkl\" points to a local header at 5 that is missing");
    }
    // Entry size running past the file.
    {
        std::string bad = z;
        bad[cd + 20] = bad[cd + 24] = static_cast<char>(0xff);
        bad[cd + 21] = bad[cd + 25] = static_cast<char>(0xff);
        EXPECT_HAS(parse_error(bad), "runs past the end of the");
    }
    // Stored sizes that disagree.
    {
        std::string bad = z;
        bad[cd + 20]    = 1;
        EXPECT_HAS(parse_error(bad), "is stored but its sizes differ");
    }
    // Encrypted flag.
    {
        std::string bad = z;
        bad[cd + 8]     = 1;
        EXPECT_HAS(parse_error(bad), "is encrypted");
    }
    // Central directory claims more entries than it holds.
    {
        std::string bad           = z;
        bad[bad.size() - 22 + 10] = 9;
        EXPECT_HAS(parse_error(bad), "zip central directory entry 3 of 9 is missing or corrupt");
    }
    // ZIP64 end record asked for but no locator.
    {
        std::string bad           = z;
        bad[bad.size() - 22 + 16] = bad[bad.size() - 22 + 17] = static_cast<char>(0xff);
        bad[bad.size() - 22 + 18] = bad[bad.size() - 22 + 19] = static_cast<char>(0xff);
        EXPECT_HAS(parse_error(bad), "asks for ZIP64 but the ZIP64 locator is missing");
    }
}
