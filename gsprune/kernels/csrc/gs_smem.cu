// GS product y = W @ x on an NVIDIA GPU with x staged in shared memory (variant "gs").
//
// The GPU form of the paper's machine (DESIGN §1): a warp is 32 lanes and shared memory
// has 32 four-byte banks. A block owns 32 consecutive rows of W, that is 32 / V bands of
// V rows, and lane l of every warp owns row l of the block (band l / V, lane l % V of
// that band). The block first copies the columns [n0, n0 + BN) of x into shared memory,
// x row c at word c * S (S = BN rounded up to odd), then its warps split the group steps
// of the bands: at step j lane l reads value and column c of group j of its band,
// and adds value * xs[c * S + n] for n < BN into its own accumulators.
//
// Banks: the 32 lanes of one warp load xs[c_l * S + n] for one n together; the word lies
// in bank (c_l * S + n) mod 32, and S is odd, so two lanes share a bank exactly when
// their columns agree mod 32. With V = 32 the 32 lanes are one GS group, whose columns
// fall in 32 distinct banks (B = 32): every shared load of the gather is conflict-free by
// construction. With V < 32 one load serves 32 / V groups of different bands; each
// group's columns are distinct mod B, but lanes of different groups may share a bank.
//
// Shared memory holds K * S + 32 * BN floats; the host picks BN (1, 2, 4 or 8) to fit.
// Padding lanes (rows past M) hold value 0 and an in-range column, as the format says.
#include "gs_smem.h"

#include <cuda_bf16.h>

namespace {

constexpr int kWarps = 8;
constexpr int kRows = 32;  // rows of W per block: one warp's lanes

__device__ inline float as_float(float v) { return v; }
__device__ inline float as_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T, typename Idx, int BN>
__global__ void __launch_bounds__(kRows * kWarps)
    gs_smem_kernel(const int64_t* __restrict__ band_ptr, int64_t n_bands,
                   const T* __restrict__ values, const Idx* __restrict__ index, int V,
                   const float* __restrict__ x, int64_t K, int64_t N, float* __restrict__ y,
                   int64_t M) {
  constexpr int S = BN | 1;  // odd row stride: distinct columns mod 32 -> distinct banks
  extern __shared__ float smem[];
  float* xs = smem;               // [K, S]
  float* ys = smem + K * S;       // [kRows, BN]
  const int lane = threadIdx.x % kRows, warp = threadIdx.x / kRows;
  const int64_t n0 = static_cast<int64_t>(blockIdx.y) * BN;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kRows;

  for (int64_t e = threadIdx.x; e < K * BN; e += blockDim.x) {
    const int64_t c = e / BN, n = e % BN;
    xs[c * S + n] = n0 + n < N ? x[c * N + n0 + n] : 0.0f;
  }
  for (int e = threadIdx.x; e < kRows * BN; e += blockDim.x) ys[e] = 0.0f;

  // This lane's band, its groups and its lane inside them.
  const int64_t band = row0 / V + lane / V;
  const int i = lane % V;
  int64_t g0 = 0, k = 0;
  if (band < n_bands) {
    g0 = band_ptr[band];
    k = band_ptr[band + 1] - g0;
  }
  int64_t k_max = k;  // the block's longest band: every lane of the warp loops as far
  for (int off = 16; off > 0; off /= 2)
    k_max = max(k_max, static_cast<int64_t>(__shfl_xor_sync(0xffffffffu, k_max, off)));
  __syncthreads();

  float acc[BN];
#pragma unroll
  for (int n = 0; n < BN; ++n) acc[n] = 0.0f;
  for (int64_t j = warp; j < k_max; j += kWarps) {
    if (j < k) {
      const int64_t slot = (g0 + j) * V + i;
      const float v = as_float(values[slot]);
      const float* xr = xs + static_cast<int64_t>(index[slot]) * S;
#pragma unroll
      for (int n = 0; n < BN; ++n) acc[n] += v * xr[n];
    }
  }
#pragma unroll
  for (int n = 0; n < BN; ++n) atomicAdd(&ys[lane * BN + n], acc[n]);
  __syncthreads();
  for (int e = threadIdx.x; e < kRows * BN; e += blockDim.x) {
    const int64_t r = row0 + e / BN, n = n0 + e % BN;
    if (r < M && n < N) y[r * N + n] = ys[e];
  }
}

template <typename T, typename Idx, int BN>
cudaError_t launch(const int64_t* band_ptr, int64_t n_bands, const void* values,
                   const void* index, int V, const float* x, int64_t K, int64_t N, float* y,
                   int64_t M, cudaStream_t stream) {
  const size_t smem = gsprune::gs_smem_bytes(K, BN);
  auto kernel = gs_smem_kernel<T, Idx, BN>;
  if (smem > 48 * 1024) {  // above the default limit a kernel must opt in
    const cudaError_t err = cudaFuncSetAttribute(
        kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (err != cudaSuccess) return err;
  }
  const dim3 grid(static_cast<unsigned>((M + kRows - 1) / kRows),
                  static_cast<unsigned>((N + BN - 1) / BN));
  kernel<<<grid, kRows * kWarps, smem, stream>>>(band_ptr, n_bands,
                                                 static_cast<const T*>(values),
                                                 static_cast<const Idx*>(index), V, x, K, N, y, M);
  return cudaGetLastError();
}

template <typename T, typename Idx>
cudaError_t launch_bn(int bn, const int64_t* band_ptr, int64_t n_bands, const void* values,
                      const void* index, int V, const float* x, int64_t K, int64_t N, float* y,
                      int64_t M, cudaStream_t stream) {
  switch (bn) {
    case 1: return launch<T, Idx, 1>(band_ptr, n_bands, values, index, V, x, K, N, y, M, stream);
    case 2: return launch<T, Idx, 2>(band_ptr, n_bands, values, index, V, x, K, N, y, M, stream);
    case 4: return launch<T, Idx, 4>(band_ptr, n_bands, values, index, V, x, K, N, y, M, stream);
    case 8: return launch<T, Idx, 8>(band_ptr, n_bands, values, index, V, x, K, N, y, M, stream);
    default: return cudaErrorInvalidValue;
  }
}

template <typename T>
cudaError_t launch_index(int index_bytes, int bn, const int64_t* band_ptr, int64_t n_bands,
                         const void* values, const void* index, int V, const float* x, int64_t K,
                         int64_t N, float* y, int64_t M, cudaStream_t stream) {
  if (index_bytes == 2)
    return launch_bn<T, int16_t>(bn, band_ptr, n_bands, values, index, V, x, K, N, y, M, stream);
  if (index_bytes == 4)
    return launch_bn<T, int32_t>(bn, band_ptr, n_bands, values, index, V, x, K, N, y, M, stream);
  return cudaErrorInvalidValue;
}

}  // namespace

namespace gsprune {

size_t gs_smem_bytes(int64_t K, int bn) {
  return static_cast<size_t>(K * (bn | 1) + kRows * bn) * sizeof(float);
}

cudaError_t gs_smem_matmul(const int64_t* band_ptr, int64_t n_bands, const void* values,
                           bool value_bf16, const void* index, int index_bytes, int V,
                           const float* x, int64_t K, int64_t N, float* y, int64_t M, int bn,
                           cudaStream_t stream) {
  if (V < 1 || V > kRows || kRows % V != 0) return cudaErrorInvalidValue;
  if (value_bf16)
    return launch_index<__nv_bfloat16>(index_bytes, bn, band_ptr, n_bands, values, index, V, x,
                                       K, N, y, M, stream);
  return launch_index<float>(index_bytes, bn, band_ptr, n_bands, values, index, V, x, K, N, y, M,
                             stream);
}

}  // namespace gsprune
