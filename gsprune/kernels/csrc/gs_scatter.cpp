// GS-format kernels (DESIGN §2, §4) for the scatter variants: y[M, N] = W @ x.
//
// gs_scatter: lane i of band t owns column t*V+i of W, `index` holds rows.
// gs_free:    one band; `lane_index` holds rows, `index` columns.
// Both add each entry's product into y at its row (a scatter-add). The SIMD paths keep a
// packed y tile (dense rows, zero-padded to whole vectors) hot in cache: the encoder
// hands out every lane's entries in row order, in step with the other lanes
// (formats/gs.py), so the rows a stretch of groups touches stay in a narrow window.
#include <vector>

#include "kernels.h"

namespace gsprune {
namespace {

// The band holding group g (the last band starting at or before it).
inline int64_t band_of(const int64_t* band_ptr, int64_t n_bands, int64_t g) {
  return std::upper_bound(band_ptr, band_ptr + n_bands + 1, g) - band_ptr - 1;
}

// Portable path: f(value, row, col) for every stored entry of groups [g0, g1); gs_scatter
// lanes past K (the last column band's padding) and zero values are skipped.
template <typename Idx, class F>
void visit_groups(const int64_t* band_ptr, int64_t n_bands, const float* values, const Idx* index,
                  const Idx* lane_index, int V, int64_t K, int64_t g0, int64_t g1, F&& f) {
  int64_t t = band_of(band_ptr, n_bands, g0);
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
}

#if GSPRUNE_AVX2

// gs_scatter, one band, one column tile of NV vectors: its lanes_valid lanes (columns < K)
// in chunks of 4, each lane's x row segment (xs: the band's V rows, wp floats apart) in registers
// while every group adds value * x into the lane's row of yp (ldy floats apart).
template <class Vec, int NV, typename Idx>
void scatter_band_tile(const float* val, const Idx* idx, int64_t k, int V, int lanes_valid,
                       const float* xs, int64_t wp, float* yp) {
  constexpr int L = 4, W = Vec::W;
  for (int c = 0; c < lanes_valid; c += L) {
    const int valid = std::min(L, lanes_valid - c);
    typename Vec::T xr[L][NV];
#pragma GCC unroll 8
    for (int i = 0; i < L; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) xr[i][j] = Vec::load(xs + (c + i) * wp + W * j);
    for (int64_t g = 0; g < k; ++g) {
      int64_t rows[L];
      load_lanes<L>(idx + g * V + c, rows);
#pragma GCC unroll 8
      for (int i = 0; i < L; ++i) {
        if (i >= valid) break;  // lanes past K: padding, their values are not read
        float* yr = yp + rows[i] * wp;
        const auto b = Vec::broadcast(val + g * V + c + i);
#pragma GCC unroll 8
        for (int j = 0; j < NV; ++j)
          Vec::store(yr + W * j, Vec::fmadd(b, xr[i][j], Vec::load(yr + W * j)));
      }
    }
  }
}

// gs_free, groups [0, G), one column tile of NV vectors: every entry adds value * xp[col]
// into yp[row] (both packed, wp floats apart).
template <class Vec, int NV, typename Idx>
void free_groups_tile(const float* val, const Idx* idx, const Idx* lane_idx, int64_t G, int V,
                      const float* xp, int64_t wp, float* yp) {
  constexpr int W = Vec::W;
  for (int64_t p = 0; p < G * V; ++p) {
    const float* xr = xp + static_cast<int64_t>(idx[p]) * wp;
    float* yr = yp + static_cast<int64_t>(lane_idx[p]) * wp;
    const auto b = Vec::broadcast(val + p);
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j)
      Vec::store(yr + W * j, Vec::fmadd(b, Vec::load(xr + W * j), Vec::load(yr + W * j)));
  }
}

// N > 1, columns [c0, c1) of y over all groups, in column tiles of W*kTile columns: y's
// tile is built in a packed buffer, then copied out.
template <class Vec, typename Idx>
void scatter_columns(const int64_t* band_ptr, int64_t n_bands, const float* values,
                     const Idx* index, const Idx* lane_index, int V, const float* x, int64_t K,
                     int64_t N, float* y, int64_t M, int64_t c0, int64_t c1) {
  constexpr int W = Vec::W;
  constexpr int64_t tile_columns = W * Vec::kTile;
  // gs_free reads x at any column (a packed tile of all K rows); gs_scatter one band's V
  // rows at a time.
  Scratch yp(static_cast<size_t>(M) * tile_columns),
      xp(static_cast<size_t>(lane_index ? K : V) * tile_columns);
  for (int64_t n0 = c0; n0 < c1; n0 += tile_columns) {
    const int64_t w = std::min(tile_columns, c1 - n0), wp = round_up(w, W);
    std::fill(yp.data(), yp.data() + M * wp, 0.0f);
    with_vectors<Vec::kTile>(wp / W, [&](auto nv) {
      constexpr int NV = decltype(nv)::value;
      if (lane_index) {
        pack_columns(x, K, N, n0, w, wp, xp.data());
        free_groups_tile<Vec, NV>(values, index, lane_index, band_ptr[n_bands], V, xp.data(), wp,
                                  yp.data());
        return;
      }
      for (int64_t t = 0; t < n_bands; ++t) {
        const int64_t rows_valid = std::min<int64_t>(V, K - t * V);  // x rows of the band
        pack_columns(x + t * V * N, rows_valid, N, n0, w, wp, xp.data());
        std::fill(xp.data() + rows_valid * wp, xp.data() + V * wp, 0.0f);
        scatter_band_tile<Vec, NV>(values + band_ptr[t] * V, index + band_ptr[t] * V,
                                   band_ptr[t + 1] - band_ptr[t], V, static_cast<int>(rows_valid),
                                   xp.data(), wp, yp.data());
      }
    });
    for (int64_t r = 0; r < M; ++r) std::copy(yp.data() + r * wp, yp.data() + r * wp + w, y + r * N + n0);
  }
}

// N == 1, groups [g0, g1), lanes in chunks of 8: the 8 products (gs_scatter: values times
// the band's 8 contiguous x entries; gs_free: values times x gathered at the columns)
// are added into out at the lanes' rows.
template <typename Idx>
void scatter_gemv(const int64_t* band_ptr, int64_t n_bands, const float* values, const Idx* index,
                  const Idx* lane_index, int V, const float* x, int64_t K, int64_t g0, int64_t g1,
                  float* out) {
  alignas(32) float prod[8];
  int64_t t = band_of(band_ptr, n_bands, g0);
  for (int64_t g = g0; g < g1; ++g) {
    while (band_ptr[t + 1] <= g) ++t;
    for (int c = 0; c < V; c += 8) {
      const int64_t p = g * V + c;
      const int64_t col0 = t * V + c;  // gs_scatter: lanes past K are padding, left out
      const int valid = lane_index ? 8 : static_cast<int>(std::clamp<int64_t>(K - col0, 0, 8));
      if (valid == 0) continue;
      const __m256 xv = lane_index   ? gather8(x, index + p)
                        : valid == 8 ? _mm256_loadu_ps(x + col0)
                                     : Ymm::load_masked(x + col0, Ymm::tail(valid));
      _mm256_store_ps(prod, _mm256_mul_ps(_mm256_loadu_ps(values + p), xv));
      int64_t rows[8];
      load_lanes<8>(lane_index ? lane_index + p : index + p, rows);
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) {
        if (i >= valid) break;
        out[rows[i]] += prod[i];
      }
    }
  }
}

#endif  // GSPRUNE_AVX2

}  // namespace

template <typename Idx>
void gs_scatter_matmul(const int64_t* band_ptr, int64_t n_bands, const float* values,
                       const Idx* index, const Idx* lane_index, int V, const float* x, int64_t K,
                       int64_t N, float* y, int64_t M, int threads, bool simd) {
  const int64_t G = band_ptr[n_bands];
#if GSPRUNE_AVX2
  // The SIMD paths take lanes 4 (N > 1) or 8 (N == 1) at a time.
  if (simd && V % (N > 1 ? 4 : 8) == 0) {
    if (N > 1) {
      // Each thread owns a range of y's columns (whole vectors) and visits every entry.
      constexpr int64_t W = TileVec::W;
      const int parts = static_cast<int>(std::clamp<int64_t>(N / W, 1, threads));
      parallel_units(parts, static_cast<const int64_t*>(nullptr), parts,
                     [&](int64_t p0, int64_t p1) {
                       const int64_t c0 = p0 == 0 ? 0 : N / W * p0 / parts * W;
                       const int64_t c1 = p1 == parts ? N : N / W * p1 / parts * W;
                       scatter_columns<TileVec>(band_ptr, n_bands, values, index, lane_index, V,
                                                x, K, N, y, M, c0, c1);
                     });
      return;
    }
    // N == 1: rows collide across groups, so each thread adds its groups into a private
    // copy of y (thread 0 into y itself), then the copies are summed.
    std::fill(y, y + M, 0.0f);
    std::vector<float> partial(static_cast<size_t>(std::max(threads - 1, 0)) * M, 0.0f);
    parallel_units(threads, static_cast<const int64_t*>(nullptr), threads,
                   [&](int64_t p0, int64_t p1) {
                     for (int64_t p = p0; p < p1; ++p)
                       scatter_gemv(band_ptr, n_bands, values, index, lane_index, V, x, K,
                                    G * p / threads, G * (p + 1) / threads,
                                    p == 0 ? y : partial.data() + (p - 1) * M);
                   });
    for (int u = 1; u < threads; ++u)
      for (int64_t r = 0; r < M; ++r) y[r] += partial[(u - 1) * M + r];
    return;
  }
#else
  (void)simd;  // only the portable path is compiled
#endif
  // Portable path: one thread per column range (wide x) or per group range into private
  // copies of y (narrow x).
  std::fill(y, y + M * N, 0.0f);
  const bool wide = N >= threads;
  const int parts = threads;
  std::vector<float> partial(wide ? 0 : static_cast<size_t>(parts - 1) * M * N, 0.0f);
  parallel_units(parts, static_cast<const int64_t*>(nullptr), parts, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t c0 = wide ? N * p / parts : 0, c1 = wide ? N * (p + 1) / parts : N;
      float* mine = wide || p == 0 ? y : partial.data() + (p - 1) * M * N;
      const int64_t g0 = wide ? 0 : G * p / parts, g1 = wide ? G : G * (p + 1) / parts;
      visit_groups(band_ptr, n_bands, values, index, lane_index, V, K, g0, g1,
                   [&](float v, int64_t r, int64_t c) {
                     axpy_scalar(v, x + c * N + c0, mine + r * N + c0, c1 - c0);
                   });
    }
  });
  for (int u = 1; u < (wide ? 1 : parts); ++u) axpy_scalar(1.0f, partial.data() + (u - 1) * M * N, y, M * N);
}

template void gs_scatter_matmul<int16_t>(const int64_t*, int64_t, const float*, const int16_t*,
                                         const int16_t*, int, const float*, int64_t, int64_t,
                                         float*, int64_t, int, bool);
template void gs_scatter_matmul<int32_t>(const int64_t*, int64_t, const float*, const int32_t*,
                                         const int32_t*, int, const float*, int64_t, int64_t,
                                         float*, int64_t, int, bool);

}  // namespace gsprune
