// PyTorch checkpoints saved with torch.save (zip format): a minimal zip directory reader and a
// restricted unpickler that can build tensors, storages and plain containers and nothing else.
// Torch-free on purpose (plain structs out), so the fuzzers link without LibTorch; checkpoint.cpp
// wraps the result into StoredTensor views (read_torch_zip).
#pragma once

#include "core/safetensors.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace glamm {

// One record of a zip archive whose bytes are stored uncompressed.
struct ZipEntry {
    std::string name;
    uint64_t data_offset = 0; // first byte of the record's data in the archive
    uint64_t size        = 0; // bytes
};

// Reads the central directory (ZIP64 included, as torch.save always writes it) and every local
// header. Throws Error naming `where` for a file that is not a zip, is truncated, has entries
// outside the file, or compressed/encrypted entries (torch.save stores records uncompressed so
// they can be memory-mapped).
std::vector<ZipEntry> read_zip_entries(const uint8_t* bytes, size_t size, const std::string& where);

// One tensor of a state dict as its storage holds it. Offsets are relative to the archive start.
struct TorchZipTensor {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    std::vector<int64_t> strides; // in elements, one per dimension (always filled)
    uint64_t offset        = 0;   // byte offset of element [0, ..., 0]
    uint64_t storage_bytes = 0;   // bytes from `offset` to the end of the storage (bounds)
    std::string storage_key;      // the `data/<key>` record; tied tensors share one
};

// Parses a whole torch.save zip held in memory: finds `<archive>/data.pkl` and the
// `<archive>/data/<key>` records, unpickles the state dict with the restricted unpickler
// (protocols 2-5 opcodes a state dict uses; globals collections.OrderedDict,
// torch._utils._rebuild_tensor_v2 / _rebuild_parameter[_with_state], torch.<Type>Storage) and
// checks that every view stays inside its storage. Tensors come out in the pickle's order.
// Throws Error naming `where` and the offending opcode, global, key or record.
std::vector<TorchZipTensor> read_torch_zip_bytes(const uint8_t* bytes, size_t size,
                                                 const std::string& where);

} // namespace glamm
