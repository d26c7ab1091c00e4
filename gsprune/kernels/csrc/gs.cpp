// GS-format kernels (DESIGN §2, §4), variant "gs" (lane owns a row): y[M, N] = W @ x.
// The same kernel runs row plans (gsprune/kernels/row_plan.py: gs_scatter, gs_free and
// CSR regrouped by rows), whose lanes own rows through row_of.
#include <vector>

#include "kernels.h"

namespace gsprune {
namespace {

// Portable band product: each valid lane is one row whose entries are (values[g, i], index[g, i]).
// Lane i of band t writes y row output_row(row_of, t*V+i).
template <typename Idx>
void gs_band_scalar(const float* val, const Idx* idx, int64_t k, int V, int lanes_valid,
                    const float* x, int64_t ldx, int64_t N, float* y, int64_t t,
                    const int32_t* row_of) {
  for (int i = 0; i < lanes_valid; ++i) {
    auto visit = [&](auto&& f) {
      for (int64_t g = 0; g < k; ++g) f(val[g * V + i], static_cast<int64_t>(idx[g * V + i]));
    };
    row_scalar(visit, x, ldx, N, y + output_row(row_of, t * V + i) * N);
  }
}

#if GSPRUNE_AVX2

// N == 1, 8*NVEC lanes of a band whose groups are `stride` floats apart: per group and 8
// lanes one contiguous value load, one gather of x at the 8 indices, one FMA into the lane
// accumulators. Two accumulator sets (even/odd groups) hide the FMA latency. Values and
// indices are prefetched kGemvPrefetch elements ahead (4096 x 4096 at 0.9, Zen 4, one
// thread, weights cold in cache: 0.76 against 0.85 ms without).
template <int NVEC, typename Idx>
void gs_lanes_gemv8(const float* val, const Idx* idx, int64_t k, int stride, const float* x,
                    float* out) {
  __m256 a0[NVEC], a1[NVEC];
  for (int j = 0; j < NVEC; ++j) a0[j] = a1[j] = _mm256_setzero_ps();
  int64_t g = 0;
  for (; g + 2 <= k; g += 2) {
    const float* v = val + g * stride;
    const Idx* ix = idx + g * stride;
    _mm_prefetch(reinterpret_cast<const char*>(v + kGemvPrefetch), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(ix + kGemvPrefetch), _MM_HINT_T0);
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
// column tile of NV vectors, all L*NV accumulators held in registers over the band's k
// groups. Per group and lane: broadcast the value, load the lane's x row segment (ldx
// floats apart: a packed tile or x itself), FMA. `val`/`idx` point at the chunk's first
// lane in group 0; row i < rows_valid is stored at out[i]. With `Masked` the tile's last
// vector holds only the columns in `last` (the tile ends inside a vector).
// Not inlined: in its own frame the loop keeps every pointer and counter in a register
// (inlined into the band loop, GCC spilled them: 15-20% slower on Zen 5 at N = 16).
template <class Vec, int L, int NV, bool Masked, typename Idx>
[[gnu::noinline]] void gs_chunk_tile(const float* val, const Idx* idx, int64_t k, int V, const float* x,
                          int64_t ldx, float* const* out, int rows_valid,
                          typename Vec::Mask last) {
  RegisterTile<Vec, L, NV, Masked> tile(last);
  const float* const end = val + k * V;
  for (const float* v = val; v != end; v += V, idx += V) {
    int64_t cols[L];
    load_lanes<L>(idx, cols);
#pragma GCC unroll 64
    for (int i = 0; i < L; ++i) tile.fma(i, v + i, x + cols[i] * ldx);
  }
  tile.store(out, rows_valid);
}

// N > 1 for bands [t0, t1): column tiles outermost (for_each_column_tile), so one tile of x
// is reused by every band while it is hot in cache; inside a tile, chunks of L lanes.
// Earlier: splitting each band's groups into K windows that all bands visit in turn (so a
// window of x stays in L1) gained nothing on a Xeon; with the encoder's in-step column
// order (formats/gs.py) a lane's x rows stay in a window that fits L1.
// x holds N columns of rows `ldx` floats apart, y the same N columns of rows `ldy` apart
// (a column range of the product when the threads split the columns).
template <class Vec, int L, typename Idx>
void gs_bands_spmm(const int64_t* band_ptr, int64_t t0, int64_t t1, const float* values,
                   const Idx* index, int V, const float* x, int64_t ldx, int64_t K, int64_t N,
                   float* y, int64_t ldy, int64_t M, const int32_t* row_of) {
  auto tile = [&](auto nv, auto masked, int64_t n0, const float* xt, int64_t ldx, auto mask) {
    constexpr int nvc = decltype(nv)::value;
    constexpr bool mk = decltype(masked)::value;
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t k = band_ptr[t + 1] - band_ptr[t];
      const int lanes_valid = static_cast<int>(std::min<int64_t>(V, M - t * V));
      for (int c = 0; c < lanes_valid; c += L) {
        const int rows = std::min(L, lanes_valid - c);
        float* dst[L];
        for (int i = 0; i < rows; ++i) dst[i] = y + output_row(row_of, t * V + c + i) * ldy + n0;
        gs_chunk_tile<Vec, L, nvc, mk>(values + band_ptr[t] * V + c, index + band_ptr[t] * V + c,
                                       k, V, xt, ldx, dst, rows, mask);
      }
    }
  };
  for_each_column_tile<Vec, Vec::kVectors>(x, ldx, K, N, (band_ptr[t1] - band_ptr[t0]) * V, tile);
}

#endif  // GSPRUNE_AVX2

}  // namespace

template <typename Idx>
void gs_rows_matmul(const int64_t* band_ptr, int64_t n_bands, const float* values,
                    const Idx* index, int V, const float* x, int64_t ldx, int64_t K, int64_t N,
                    float* y, int64_t M, int threads, bool simd, const int32_t* row_of) {
  // The SIMD kernels cover V % 4 == 0 (every V of the GS patterns); N == 1 also needs
  // V == 4 or V % 8 == 0 (the GEMV's lane chunks).
  const bool vec = GSPRUNE_AVX2 && simd && V % 4 == 0 && (N > 1 || V == 4 || V % 8 == 0);
#if GSPRUNE_AVX2
  // Bands [t0, t1) over the columns [n0, n1) of x and y.
  auto spmm = [&](int64_t t0, int64_t t1, int64_t n0, int64_t n1) {
    // Lanes per chunk: the tile's, where V is a multiple of it (V % 4 == 0 always).
    if (V % TileVec::kLanes == 0)
      return gs_bands_spmm<TileVec, TileVec::kLanes>(band_ptr, t0, t1, values, index, V, x + n0,
                                                     ldx, K, n1 - n0, y + n0, N, M, row_of);
    return gs_bands_spmm<TileVec, 4>(band_ptr, t0, t1, values, index, V, x + n0, ldx, K,
                                     n1 - n0, y + n0, N, M, row_of);
  };
  const int64_t nnz = (band_ptr[n_bands] - band_ptr[0]) * V;
  if (vec && split_packed_columns<TileVec, TileVec::kVectors>(
                 K, N, nnz, threads, [&](int64_t n0, int64_t n1) { spmm(0, n_bands, n0, n1); }))
    return;
#endif
  parallel_units(n_bands, band_ptr, threads, [&](int64_t t0, int64_t t1) {
#if GSPRUNE_AVX2
    if (vec && N > 1) return spmm(t0, t1, 0, N);
#endif
    std::vector<float> lanes(V);  // lane sums when they do not go to V consecutive rows
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t k = band_ptr[t + 1] - band_ptr[t];
      const float* val = values + band_ptr[t] * V;
      const Idx* idx = index + band_ptr[t] * V;
      const int lanes_valid = static_cast<int>(std::min<int64_t>(V, M - t * V));
      if (!vec) {
        gs_band_scalar(val, idx, k, V, lanes_valid, x, ldx, N, y, t, row_of);
        continue;
      }
#if GSPRUNE_AVX2
      float* yband = y + t * V;  // N == 1
      float* out = lanes_valid == V && !row_of ? yband : lanes.data();
      gs_band_gemv(val, idx, k, V, x, out);
      if (out != yband)
        for (int i = 0; i < lanes_valid; ++i) y[output_row(row_of, t * V + i)] = out[i];
#endif
    }
  });
}

template void gs_rows_matmul<int16_t>(const int64_t*, int64_t, const float*, const int16_t*, int,
                                      const float*, int64_t, int64_t, int64_t, float*, int64_t,
                                      int, bool, const int32_t*);
template void gs_rows_matmul<int32_t>(const int64_t*, int64_t, const float*, const int32_t*, int,
                                      const float*, int64_t, int64_t, int64_t, float*, int64_t,
                                      int, bool, const int32_t*);

}  // namespace gsprune
