// CUDA graphs and allocator statistics (see the header); stubs without GLAMM_CUDA.
#include "core/cuda_graph.h"

#include "core/error.h"

#ifdef GLAMM_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <exception>

namespace glamm {

#ifdef GLAMM_CUDA

struct CudaGraph::State {
    at::cuda::CUDAGraph graph;
    bool captured = false;
};

CudaGraph::CudaGraph() : state_(std::make_unique<State>()) {}
CudaGraph::~CudaGraph() = default;

bool CudaGraph::supported() {
    return true;
}

void CudaGraph::capture(const c10::Device& device, const std::function<void()>& body) {
    if (!device.is_cuda()) fail("CudaGraph::capture: device ", device.str(), " is not a GPU");
    if (state_->captured) fail("CudaGraph::capture: already captured");
    c10::cuda::CUDAGuard device_guard(device);
    // Work queued on the current stream (the inputs) must be done before the side stream reads
    // it, and the warm-up's results before the current stream reads them.
    c10::cuda::device_synchronize();
    // ref: torch.cuda.graphs.graph — warm-up and capture on a stream that is not the default one
    // (capturing on the legacy default stream is an error).
    const c10::cuda::CUDAStream stream = c10::cuda::getStreamFromPool(false, device.index());
    {
        c10::cuda::CUDAStreamGuard stream_guard(stream);
        body(); // warm-up: the real first run
        stream.synchronize();
        bool recording = false;
        try {
            state_->graph.capture_begin();
            recording = true;
            body();
            recording = false;
            state_->graph.capture_end();
        } catch (const std::exception& e) {
            // The stream must leave capture mode (and the allocator the graph's pool) before
            // anything else runs on it: the eager fallback uses this device next.
            if (recording) {
                try {
                    state_->graph.capture_end(); // ends the capture; throws on an invalid graph
                } catch (const std::exception&) {
                }
            }
            state_ = std::make_unique<State>(); // drops the half-recorded graph
            fail("CUDA graph capture failed: ", e.what());
        }
    }
    c10::cuda::device_synchronize();
    state_->captured = true;
}

void CudaGraph::replay() {
    if (!state_->captured) fail("CudaGraph::replay: nothing captured");
    state_->graph.replay();
}

bool CudaGraph::captured() const {
    return state_->captured;
}

bool cuda_memory_stats(const c10::Device& device, DeviceMemoryStats& stats) {
    if (!device.is_cuda()) return false;
    const c10::DeviceIndex index =
        device.has_index() ? device.index() : c10::cuda::current_device();
    const auto s = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
    // Index 0 of every statistic array is the aggregate over pool kinds.
    stats.allocated_now  = s.allocated_bytes[0].current;
    stats.allocated_peak = s.allocated_bytes[0].peak;
    stats.reserved_peak  = s.reserved_bytes[0].peak;
    return true;
}

void reset_cuda_peak_memory(const c10::Device& device) {
    if (!device.is_cuda()) return;
    const c10::DeviceIndex index =
        device.has_index() ? device.index() : c10::cuda::current_device();
    c10::cuda::CUDACachingAllocator::resetPeakStats(index);
}

void release_cached_cuda_memory(const c10::Device& device) {
    if (device.is_cuda()) c10::cuda::CUDACachingAllocator::emptyCache();
}

#else // no CUDA in this build

struct CudaGraph::State {};

CudaGraph::CudaGraph()  = default;
CudaGraph::~CudaGraph() = default;

bool CudaGraph::supported() {
    return false;
}

void CudaGraph::capture(const c10::Device& device, const std::function<void()>&) {
    fail("CUDA graphs are not available: this build's LibTorch has no CUDA (device ", device.str(),
         ")");
}

void CudaGraph::replay() {
    fail("CudaGraph::replay: this build has no CUDA");
}

bool CudaGraph::captured() const {
    return false;
}

bool cuda_memory_stats(const c10::Device&, DeviceMemoryStats&) {
    return false;
}

void reset_cuda_peak_memory(const c10::Device&) {}

void release_cached_cuda_memory(const c10::Device&) {}

#endif

} // namespace glamm
