#include "core/torch_zip.h"

#include "core/error.h"

namespace glamm {

std::vector<StoredTensor> read_torch_zip(const std::string& path) {
    fail(path, ": reading PyTorch .bin checkpoints is not implemented yet");
}

} // namespace glamm
