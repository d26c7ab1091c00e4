// GS product on an NVIDIA GPU with x staged in shared memory: the launcher that
// gs_smem_bindings.cpp calls (raw pointers, no torch headers, so gs_smem.cu compiles alone).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace gsprune {

// Bytes of shared memory one block needs for K rows of x and bn columns.
size_t gs_smem_bytes(int64_t K, int bn);

// y[M, N] = W @ x[K, N] for a GS matrix of variant "gs" (see gs_smem.cu). band_ptr:
// int64[n_bands + 1]; values: float32 (value_bf16 == 0) or bfloat16 [G, V]; index: int16
// (index_bytes == 2) or int32 (4) [G, V]; V divides 32; bn in {1, 2, 4, 8}. All pointers
// are device memory; the launch goes to `stream`. Returns the launch's cudaError_t.
cudaError_t gs_smem_matmul(const int64_t* band_ptr, int64_t n_bands, const void* values,
                           bool value_bf16, const void* index, int index_bytes, int V,
                           const float* x, int64_t K, int64_t N, float* y, int64_t M, int bn,
                           cudaStream_t stream);

}  // namespace gsprune
