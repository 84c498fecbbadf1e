// PyTorch checkpoints saved with torch.save (zip format): the tensors of a state dict, read with a
// restricted unpickler that can build tensors, storages and plain containers and nothing else.
#pragma once

#include "core/checkpoint.h"

#include <string>
#include <vector>

namespace glamm {

// Reads every tensor of a state-dict `.bin` file. Tensors view the mapped file (storages are
// stored uncompressed in the zip). Throws Error naming the file and what is wrong (not a zip,
// truncated, a pickle opcode or global outside the state-dict subset, a storage out of bounds).
std::vector<StoredTensor> read_torch_zip(const std::string& path);

} // namespace glamm
