// libFuzzer target: arbitrary bytes as a safetensors file through parse_safetensors_header. It must
// either throw glamm::Error or return a header whose every tensor lies inside the data area, with
// a byte size matching its shape, and no two tensors overlapping (traps otherwise).
#include "core/error.h"
#include "core/safetensors.h"

#include <cstdint>
#include <string>

namespace {

void check(bool ok) {
    if (!ok) __builtin_trap();
}

void parse(const uint8_t* data, size_t size, uint64_t file_size) {
    try {
        const glamm::SafetensorsHeader h =
            glamm::parse_safetensors_header(data, size, file_size, "fuzz");
        check(h.data_offset >= 8 && h.data_offset <= file_size && h.data_offset <= size);
        uint64_t prev_end = 0;
        for (const auto& t : h.tensors) {
            check(t.begin <= t.end && t.end <= file_size - h.data_offset);
            check(t.begin >= prev_end); // sorted, no overlap
            prev_end = t.end;
            check(t.numel() * glamm::dtype_size(t.dtype) == t.nbytes());
            for (int64_t d : t.shape) check(d >= 0);
        }
    } catch (const glamm::Error&) {
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    parse(data, size, size);                // the input is the whole file
    parse(data, size, size + (1ull << 32)); // the input is a prefix of a larger file
    return 0;
}
