// GS-format kernels (DESIGN §2, §4): y[M, N] = W @ x for the three GS variants.
#include <vector>

#include "kernels.h"

namespace gsprune {
namespace {

// Portable band product: each valid lane is one row whose entries are (values[g, i], index[g, i]).
template <typename Idx>
void gs_band_scalar(const float* val, const Idx* idx, int64_t k, int V, int lanes_valid,
                    const float* x, int64_t N, float* yband) {
  for (int i = 0; i < lanes_valid; ++i) {
    auto visit = [&](auto&& f) {
      for (int64_t g = 0; g < k; ++g) f(val[g * V + i], static_cast<int64_t>(idx[g * V + i]));
    };
    row_scalar(visit, x, N, yband + i * N);
  }
}

#if GSPRUNE_AVX2

// N == 1, 8*NVEC lanes of a band whose groups are `stride` floats apart: per group and 8
// lanes one contiguous value load, one gather of x at the 8 indices, one FMA into the lane
// accumulators. Two accumulator sets (even/odd groups) hide the FMA latency.
template <int NVEC, typename Idx>
void gs_lanes_gemv8(const float* val, const Idx* idx, int64_t k, int stride, const float* x,
                    float* out) {
  __m256 a0[NVEC], a1[NVEC];
  for (int j = 0; j < NVEC; ++j) a0[j] = a1[j] = _mm256_setzero_ps();
  int64_t g = 0;
  for (; g + 2 <= k; g += 2) {
    const float* v = val + g * stride;
    const Idx* ix = idx + g * stride;
    for (int j = 0; j < NVEC; ++j) {
      const __m256 x0 = gather8(x, ix + 8 * j);
      const __m256 x1 = gather8(x, ix + stride + 8 * j);
      a0[j] = _mm256_fmadd_ps(_mm256_loadu_ps(v + 8 * j), x0, a0[j]);
      a1[j] = _mm256_fmadd_ps(_mm256_loadu_ps(v + stride + 8 * j), x1, a1[j]);
    }
  }
  if (g < k) {
    const float* v = val + g * stride;
    const Idx* ix = idx + g * stride;
    for (int j = 0; j < NVEC; ++j) {
      const __m256 x0 = gather8(x, ix + 8 * j);
      a0[j] = _mm256_fmadd_ps(_mm256_loadu_ps(v + 8 * j), x0, a0[j]);
    }
  }
  for (int j = 0; j < NVEC; ++j) _mm256_storeu_ps(out + 8 * j, _mm256_add_ps(a0[j], a1[j]));
}

// N == 1, V == 4: the same with 128-bit vectors.
template <typename Idx>
void gs_lanes_gemv4(const float* val, const Idx* idx, int64_t k, const float* x, float* out) {
  __m128 a0 = _mm_setzero_ps(), a1 = _mm_setzero_ps();
  int64_t g = 0;
  for (; g + 2 <= k; g += 2) {
    a0 = _mm_fmadd_ps(_mm_loadu_ps(val + g * 4), gather4(x, idx + g * 4), a0);
    a1 = _mm_fmadd_ps(_mm_loadu_ps(val + g * 4 + 4), gather4(x, idx + g * 4 + 4), a1);
  }
  if (g < k) a0 = _mm_fmadd_ps(_mm_loadu_ps(val + g * 4), gather4(x, idx + g * 4), a0);
  _mm_storeu_ps(out, _mm_add_ps(a0, a1));
}

// N == 1: out[0:V] = the band's V lane sums.
template <typename Idx>
void gs_band_gemv(const float* val, const Idx* idx, int64_t k, int V, const float* x, float* out) {
  if (V == 4) return gs_lanes_gemv4(val, idx, k, x, out);
  // Widest lane chunk that divides V: 32, 16 or 8 lanes per pass over the band.
  const int chunk = V % 32 == 0 ? 32 : V % 16 == 0 ? 16 : 8;
  for (int c = 0; c < V; c += chunk) {
    if (chunk == 32) gs_lanes_gemv8<4>(val + c, idx + c, k, V, x, out + c);
    else if (chunk == 16) gs_lanes_gemv8<2>(val + c, idx + c, k, V, x, out + c);
    else gs_lanes_gemv8<1>(val + c, idx + c, k, V, x, out + c);
  }
}

// N > 1, the register-blocked hot path: an L-lane chunk of a band (L rows of y) times one
// column tile of 8*NV columns, all L*NV accumulators held in registers over the band's k
// groups. Per group and lane: broadcast the value, load the contiguous x row segment
// x[index, n0:n0+8*NV], FMA. `val`/`idx` point at the chunk's first lane in group 0.
// The unroll pragmas matter: without them GCC keeps a stack copy of acc[] and stores all
// of it every group (measured 10-15% slower).
template <int L, int NV, bool Masked, typename Idx>
inline void gs_chunk_tile(const float* val, const Idx* idx, int64_t k, int V, const float* x,
                          int64_t N, int64_t n0, __m256i mask, float* ychunk, int rows_valid) {
  __m256 acc[L][NV];
#pragma GCC unroll 64
  for (int i = 0; i < L; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[i][j] = _mm256_setzero_ps();
  for (int64_t g = 0; g < k; ++g) {
    const float* v = val + g * V;
    int64_t cols[L];
    load_lanes<L>(idx + g * V, cols);
#pragma GCC unroll 64
    for (int i = 0; i < L; ++i) {
      const float* xr = x + cols[i] * N + n0;
      const __m256 b = _mm256_broadcast_ss(v + i);
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j)
        acc[i][j] = _mm256_fmadd_ps(b, load8<Masked>(xr + 8 * j, mask), acc[i][j]);
    }
  }
#pragma GCC unroll 64
  for (int i = 0; i < L; ++i) {
    if (i >= rows_valid) break;
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) store8<Masked>(ychunk + i * N + n0 + 8 * j, acc[i][j], mask);
  }
}

// N > 1 for one band: chunks of 4 lanes (V % 4 == 0) times column tiles of 8*NV columns.
// Measured on Zen 4: 4 lanes x 32 columns beats 8 lanes x 16 columns (fewer value and
// index loads per FMA, two adjacent cache lines per x row); 16 accumulators need the 32
// EVEX registers, plain AVX2 gets 4 x 16.
template <typename Idx>
void gs_band_spmm(const float* val, const Idx* idx, int64_t k, int V, int lanes_valid,
                  const float* x, int64_t N, float* yband) {
  constexpr int L = 4, NV = kYmmRegisters == 32 ? 4 : 2;
  for (int c = 0; c < lanes_valid; c += L) {
    const int rows_valid = std::min(L, lanes_valid - c);
    for_each_tile<NV>(N, [&](auto nv, auto masked, int64_t n0, __m256i mask) {
      gs_chunk_tile<L, decltype(nv)::value, decltype(masked)::value>(
          val + c, idx + c, k, V, x, N, n0, mask, yband + c * N, rows_valid);
    });
  }
}

#endif  // GSPRUNE_AVX2

}  // namespace

template <typename Idx>
void gs_rows_matmul(const int64_t* band_ptr, int64_t n_bands, const float* values,
                    const Idx* index, int V, const float* x, int64_t N, float* y, int64_t M,
                    int threads, bool simd) {
  const bool vec = GSPRUNE_AVX2 && simd && V % 4 == 0;
  parallel_units(n_bands, band_ptr, threads, [&](int64_t t0, int64_t t1) {
    std::vector<float> lanes(V);  // the last band's lane sums when it overhangs M
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t k = band_ptr[t + 1] - band_ptr[t];
      const float* val = values + band_ptr[t] * V;
      const Idx* idx = index + band_ptr[t] * V;
      const int lanes_valid = static_cast<int>(std::min<int64_t>(V, M - t * V));
      float* yband = y + t * V * N;
      // The GEMV kernels cover V == 4 and V % 8 == 0 (every V of the GS patterns).
      if (!vec || (N == 1 && V != 4 && V % 8 != 0)) {
        gs_band_scalar(val, idx, k, V, lanes_valid, x, N, yband);
        continue;
      }
#if GSPRUNE_AVX2
      if (N == 1) {
        float* out = lanes_valid == V ? yband : lanes.data();
        gs_band_gemv(val, idx, k, V, x, out);
        if (out != yband) std::copy(out, out + lanes_valid, yband);
      } else {
        gs_band_spmm(val, idx, k, V, lanes_valid, x, N, yband);
      }
#endif
    }
  });
}

template <typename Idx>
void gs_scatter_matmul(const int64_t* band_ptr, int64_t n_bands, const float* values,
                       const Idx* index, const Idx* lane_index, int V, const float* x, int64_t K,
                       int64_t N, float* y, int64_t M, int threads, bool simd) {
  auto axpy = axpy_scalar;
#if GSPRUNE_AVX2
  if (simd) axpy = axpy_simd;
#else
  (void)simd;  // only the portable path is compiled
#endif
  // f(value, row, col) for every stored entry of groups [g0, g1). gs_scatter lanes past K
  // (the last column band's padding) and zero values are skipped.
  auto visit_groups = [&](int64_t g0, int64_t g1, auto&& f) {
    // t: the band holding group g0 (the last band starting at or before it).
    int64_t t = std::upper_bound(band_ptr, band_ptr + n_bands + 1, g0) - band_ptr - 1;
    for (int64_t g = g0; g < g1; ++g) {
      while (band_ptr[t + 1] <= g) ++t;
      for (int i = 0; i < V; ++i) {
        const int64_t p = g * V + i;
        const float v = values[p];
        const int64_t row = lane_index ? lane_index[p] : index[p];
        const int64_t col = lane_index ? index[p] : t * V + i;
        if (v != 0.0f && col < K) f(v, row, col);
      }
    }
  };
  const int64_t G = band_ptr[n_bands];
  std::fill(y, y + M * N, 0.0f);
  if (threads <= 1) {
    visit_groups(0, G, [&](float v, int64_t r, int64_t c) { axpy(v, x + c * N, y + r * N, N); });
    return;
  }
  if (N >= 8 * threads) {
    // Wide x: each thread owns a column range of y (multiples of 8) and visits every entry.
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      const int64_t c0 = N / 8 * t / nt * 8, c1 = t + 1 == nt ? N : N / 8 * (t + 1) / nt * 8;
      visit_groups(0, G, [&](float v, int64_t r, int64_t c) {
        axpy(v, x + c * N + c0, y + r * N + c0, c1 - c0);
      });
    }
    return;
  }
  // Narrow x: rows collide across groups, so each thread scatters its groups into a private
  // copy of y (thread 0 into y itself), then the copies are summed row-parallel.
  std::vector<float> partial(static_cast<size_t>(threads - 1) * M * N, 0.0f);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    float* mine = t == 0 ? y : partial.data() + (t - 1) * M * N;
    visit_groups(G * t / nt, G * (t + 1) / nt, [&](float v, int64_t r, int64_t c) {
      axpy(v, x + c * N, mine + r * N, N);
    });
#pragma omp barrier
#pragma omp for schedule(static)
    for (int64_t r = 0; r < M; ++r)
      for (int u = 1; u < nt; ++u) axpy(1.0f, partial.data() + ((u - 1) * M + r) * N, y + r * N, N);
  }
}

template void gs_rows_matmul<int16_t>(const int64_t*, int64_t, const float*, const int16_t*, int,
                                      const float*, int64_t, float*, int64_t, int, bool);
template void gs_rows_matmul<int32_t>(const int64_t*, int64_t, const float*, const int32_t*, int,
                                      const float*, int64_t, float*, int64_t, int, bool);
template void gs_scatter_matmul<int16_t>(const int64_t*, int64_t, const float*, const int16_t*,
                                         const int16_t*, int, const float*, int64_t, int64_t,
                                         float*, int64_t, int, bool);
template void gs_scatter_matmul<int32_t>(const int64_t*, int64_t, const float*, const int32_t*,
                                         const int32_t*, int, const float*, int64_t, int64_t,
                                         float*, int64_t, int, bool);

}  // namespace gsprune
