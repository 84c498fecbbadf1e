// safetensors header parsing: every way a header can lie gets its own message.
#include "core/error.h"
#include "core/safetensors.h"
#include "support/test_support.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

using namespace glamm;

namespace {

// Builds a safetensors byte string from a header JSON and a data area of `data_bytes` zeros.
std::string make_file(const std::string& header_json, size_t data_bytes) {
    std::string out(8, '\0');
    const uint64_t n = header_json.size();
    for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    out += header_json;
    out += std::string(data_bytes, '\0');
    return out;
}

std::string parse_error(const std::string& bytes) {
    return test::error_of([&] {
        parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                                 bytes.size(), "f.safetensors");
    });
}

} // namespace

TEST(Safetensors, ParsesValidHeader) {
    const std::string bytes = make_file(
        R"({"__metadata__":{"format":"pt"},"b":{"dtype":"BF16","shape":[2,3],"data_offsets":[16,28]},)"
        R"("a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})",
        28);
    auto h = parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                                      bytes.size(), "f");
    ASSERT_EQ(h.tensors.size(), 2u);
    EXPECT_EQ(h.tensors[0].name, "a"); // sorted by offset
    EXPECT_EQ(h.tensors[1].shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(h.tensors[1].dtype, DType::BF16);
    EXPECT_EQ(h.metadata.at("format"), "pt");
    EXPECT_EQ(h.data_offset, 8 + bytes.size() - 8 - 28);
}

TEST(Safetensors, RejectsEveryKindOfLie) {
    EXPECT_NE(parse_error("abc").find("too short"), std::string::npos);
    EXPECT_NE(parse_error(make_file("{}", 0).substr(0, 8) + "{").find("runs past the end"),
              std::string::npos);
    EXPECT_NE(parse_error(make_file("{not json", 0)).find("not valid JSON"), std::string::npos);
    EXPECT_NE(parse_error(make_file("[1,2]", 0)).find("not a JSON object"), std::string::npos);
    EXPECT_NE(parse_error(make_file(R"({"a":{"dtype":"Q7","shape":[1],"data_offsets":[0,1]}})", 1))
                  .find("unknown dtype \"Q7\""),
              std::string::npos);
    EXPECT_NE(parse_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4))
                  .find("4 bytes stored but shape [2] of F32 needs 8"),
              std::string::npos);
    EXPECT_NE(parse_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4))
                  .find("past the data area"),
              std::string::npos);
    EXPECT_NE(parse_error(make_file(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                                    R"("b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})",
                                    6))
                  .find("overlap"),
              std::string::npos);
    EXPECT_NE(parse_error(make_file(R"({"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}})", 0))
                  .find("non-negative"),
              std::string::npos);
    EXPECT_NE(parse_error(make_file(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[3,1]}})", 4))
                  .find("reversed"),
              std::string::npos);
    EXPECT_NE(parse_error(make_file(R"({"a":{"dtype":"U8","shape":[1]}})", 1)).find("data_offsets"),
              std::string::npos);
}

TEST(Safetensors, WriteThenReadRoundTrips) {
    const std::string dir  = test::make_temp_dir("st");
    const std::string path = dir + "/x.safetensors";
    const float a[3]       = {1.f, -2.f, 3.5f};
    const uint8_t b[5]     = {1, 2, 3, 4, 5};
    write_safetensors(path,
                      {{"a", DType::F32, {3}, a, sizeof a}, {"b", DType::U8, {5}, b, sizeof b}},
                      {{"format", "pt"}});
    SafetensorsFile f = SafetensorsFile::open(path);
    ASSERT_EQ(f.header.tensors.size(), 2u);
    EXPECT_EQ(f.header.data_offset % 8, 0u);
    EXPECT_EQ(std::memcmp(f.data(f.header.tensors[0]), a, sizeof a), 0);
    EXPECT_EQ(std::memcmp(f.data(f.header.tensors[1]), b, sizeof b), 0);
}

// release_pages gives back the whole pages of a range inside a live mapping (what int8
// quantization does for the float weights it replaced): they stop counting as resident and
// reading them again reads the file. Memory that no mapping holds is left alone.
TEST(MappedFile, ReleasePagesGivesBackOnlyPagesOfALiveMapping) {
    const long page        = sysconf(_SC_PAGESIZE);
    constexpr long kPages  = 64;
    const std::string path = test::make_temp_dir("mapped") + "/weights.bin";
    std::vector<uint8_t> bytes(static_cast<size_t>(kPages * page + 100));
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i % 251);
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));

    auto file = MappedFile::open(path);
    ASSERT_EQ(std::memcmp(file->data(), bytes.data(), bytes.size()), 0); // every page resident
    const long before = test::resident_file_kb();
    // A range from the middle of page 0 to the middle of the last page: pages 1 .. 62 go.
    EXPECT_TRUE(MappedFile::release_pages(file->data() + page / 2, (kPages - 1) * page));
    const long after = test::resident_file_kb();
    EXPECT_GE(before - after, (kPages - 2) * page / 1024) << before << " kB -> " << after << " kB";
    EXPECT_EQ(std::memcmp(file->data(), bytes.data(), bytes.size()), 0); // read from the file again

    std::vector<uint8_t> heap(static_cast<size_t>(4 * page), 7);
    EXPECT_FALSE(MappedFile::release_pages(heap.data(), heap.size()));
    EXPECT_EQ(heap[static_cast<size_t>(2 * page)], 7);
    EXPECT_FALSE(MappedFile::release_pages(file->data() + 1, file->size())); // runs past the end
    const uint8_t* unmapped = file->data();
    file.reset();
    EXPECT_FALSE(MappedFile::release_pages(unmapped, 100)); // no longer a live mapping
}
