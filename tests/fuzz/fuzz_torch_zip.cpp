// libFuzzer target: arbitrary bytes as a torch.save .bin through read_torch_zip_bytes (zip
// directory + restricted unpickler). It must either throw glamm::Error or return tensors whose
// every element lies inside the input and inside the tensor's own storage (traps otherwise).
#include "core/error.h"
#include "core/torch_zip.h"

#include <cstdint>
#include <string>

namespace {

void check(bool ok) {
    if (!ok) __builtin_trap();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        for (const auto& t : glamm::read_torch_zip_bytes(data, size, "fuzz.bin")) {
            check(t.shape.size() == t.strides.size());
            const uint64_t esize = glamm::dtype_size(t.dtype);
            check(t.storage_bytes % esize == 0);
            check(t.offset <= size && t.storage_bytes <= size - t.offset);
            // Highest element the view touches (the parser rejects overflow).
            uint64_t last = 0;
            bool empty    = false;
            for (size_t d = 0; d < t.shape.size(); ++d) {
                check(t.shape[d] >= 0 && t.strides[d] >= 0);
                uint64_t span = 0;
                if (t.shape[d] == 0)
                    empty = true;
                else
                    check(!__builtin_mul_overflow(static_cast<uint64_t>(t.shape[d] - 1),
                                                  static_cast<uint64_t>(t.strides[d]), &span) &&
                          !__builtin_add_overflow(last, span, &last));
            }
            if (!empty) check((last + 1) * esize <= t.storage_bytes);
            // Touch the first and last byte so ASan sees any escape from the input.
            if (!empty) {
                volatile uint8_t first = data[t.offset];
                volatile uint8_t end   = data[t.offset + (last + 1) * esize - 1];
                (void)first;
                (void)end;
            }
        }
    } catch (const glamm::Error&) {
    }
    return 0;
}
