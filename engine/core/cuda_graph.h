// CUDA graphs (a fixed sequence of GPU work recorded once and replayed with one launch, through
// LibTorch's at::cuda::CUDAGraph) and the CUDA caching allocator's memory statistics. The only
// part of the engine that includes CUDA headers; a build against a CPU-only LibTorch compiles the
// stubs (supported() false, capture() throws, statistics unavailable).
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <memory>

namespace glamm {

class CudaGraph {
public:
    CudaGraph();
    ~CudaGraph();
    CudaGraph(const CudaGraph&)            = delete;
    CudaGraph& operator=(const CudaGraph&) = delete;

    // True when this build was made against a CUDA LibTorch (GLAMM_CUDA).
    static bool supported();

    // Runs `body` once on a side stream of `device` (its results are real: the warm-up creates
    // cuBLAS workspaces and allocator blocks outside the graph), then records it. Tensors that
    // `body` allocates while recording live in the graph's private memory pool and are rewritten
    // by every replay(), so `body` must read its inputs from, and leave its outputs in, tensors
    // that outlive the graph. Throws Error when the build has no CUDA or the capture fails
    // (e.g. an operation that synchronises with the host).
    void capture(const c10::Device& device, const std::function<void()>& body);
    // Launches the recorded work on the current stream. Throws Error before capture().
    void replay();
    bool captured() const;

private:
    struct State;
    std::unique_ptr<State> state_;
};

// The caching allocator's view of one CUDA device, in bytes.
struct DeviceMemoryStats {
    int64_t allocated_now  = 0; // held by live tensors
    int64_t allocated_peak = 0; // most ever held by tensors since the last reset
    int64_t reserved_peak  = 0; // most ever reserved from the driver (what nvidia-smi sees)
};

// False (and `stats` untouched) on a CPU device or a build without CUDA.
bool cuda_memory_stats(const c10::Device& device, DeviceMemoryStats& stats);
// Starts the peaks over (no-op where cuda_memory_stats would return false).
void reset_cuda_peak_memory(const c10::Device& device);
// Hands the allocator's cached free blocks back to the driver (no-op off CUDA): after replacing
// weights by larger merged tensors, so the old blocks do not stay reserved.
void release_cached_cuda_memory(const c10::Device& device);

} // namespace glamm
