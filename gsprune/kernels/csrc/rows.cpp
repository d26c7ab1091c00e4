// Row-wise kernels for the comparison formats BSR (R x C blocks) and N:M (CSR runs as a
// row plan through the GS kernel: gsprune/kernels/row_plan.py). Each output row is a list
// of (value, column) entries; N == 1 has a dedicated SIMD dot product per format; N > 1
// register tiles that walk x in column tiles like the GS kernel (for_each_column_tile), so
// every format is timed with the same loop order and tile widths: N:M steps L rows
// together like GS lanes, BSR one row at a time with its block's entries spread over
// accumulator sets, and the rows N:M's chunks leave go through rows_spmm. Threads split
// the rows, or x's columns where each share still packs (split_packed_columns), as GS.
#include <utility>

#include "kernels.h"

namespace gsprune {
namespace {

#if GSPRUNE_AVX2

// The N:M row dots' remainder: sum of v[s] * x[column] over slots [s, slots), column
// checked against K (slots of the run that overhangs K hold no defined value).
inline float nm_tail(const float* v, const uint8_t* off, int n, int m, int64_t s, int64_t slots,
                     int64_t K, const float* x) {
  float sum = 0.0f;
  for (; s < slots; ++s) {
    const int64_t col = s / n * m + off[s];
    if (col < K) sum += v[s] * x[col];
  }
  return sum;
}

// N:M row dot, for 8 % n == 0: slot s lies in run s / n, so the 8 slots from s0 (a
// multiple of 8) have columns (s0 / n) * m + (lane / n) * m + offset. x is read with
// scalar loads (as the GS GEMV's gather8: faster than vpgatherdd on the Zen CPUs measured)
// into two accumulators, 16 slots a step. Slots past `full_slots` belong to the run that
// overhangs K and are checked one by one.
inline float nm_dot(const float* v, const uint8_t* off, int n, int m, int64_t full_slots,
                    int64_t slots, int64_t K, const float* x) {
  int64_t lane_base[8];
  for (int lane = 0; lane < 8; ++lane) lane_base[lane] = lane / n * m;
  const int64_t step = 8 / n * m;  // columns spanned by 8 slots
  auto gather = [&](int64_t s, int64_t col0) {
    const uint8_t* o = off + s;
    const __m128 lo = _mm_setr_ps(x[col0 + lane_base[0] + o[0]], x[col0 + lane_base[1] + o[1]],
                                  x[col0 + lane_base[2] + o[2]], x[col0 + lane_base[3] + o[3]]);
    const __m128 hi = _mm_setr_ps(x[col0 + lane_base[4] + o[4]], x[col0 + lane_base[5] + o[5]],
                                  x[col0 + lane_base[6] + o[6]], x[col0 + lane_base[7] + o[7]]);
    return _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1);
  };
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t s = 0, col0 = 0;
  for (; s + 16 <= full_slots; s += 16, col0 += 2 * step) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(v + s), gather(s, col0), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(v + s + 8), gather(s + 8, col0 + step), acc1);
  }
  if (s + 8 <= full_slots) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(v + s), gather(s, col0), acc0);
    s += 8;
  }
  return hsum(_mm256_add_ps(acc0, acc1)) + nm_tail(v, off, n, m, s, slots, K, x);
}

#if GSPRUNE_AVX512
// N:M row dots for m <= 32 by in-register permutes: P slots (the most whole runs, at
// most 16, whose columns span <= 32) lie in the 32 consecutive columns from their first
// run's, so one two-register permute (vpermt2ps) of two x loads gives their x values,
// with no load per slot. A slot's column within the span is (slot / n) * m + offset.
// Made once per product (the lane bases), used for every row. Slots from the first step
// whose 32 columns reach past K (or past the full runs) are done one by one with a
// column check. The values and offsets are prefetched kGemvPrefetch slots ahead: rows stream
// from L3 or memory (4096 x 4096 at 2:4 is 40 MB; prefetching made its GEMV 1.2x faster).
// Zen 4, one thread, weights cold in cache: 4096 x 4096 at 2:4 2.54 ms against 4.63 ms
// for nm_dot's gathers (dense F.linear 3.5 ms); GNMT's 1024 x 256 1.5x faster.
class NmPermuteDot {
 public:
  // P = 0 (applies() false) when no whole run fits a step: m > 32 (32 columns) or n > 16
  // (16 slots).
  NmPermuteDot(int n, int m)
      : n_(n), m_(m), P_(m <= 32 ? std::min(16, 32 * n / m) / n * n : 0), span_(P_ / n * m),
        live_(static_cast<__mmask16>((1u << P_) - 1u)) {
    alignas(64) int32_t base[16] = {};
    for (int lane = 0; lane < P_; ++lane) base[lane] = lane / n * m;
    lane_base_ = _mm512_load_si512(base);
  }

  bool applies() const { return P_ > 0; }

  // Row dot: v, off are the row's `slots` slots, of which the first `full_slots` lie in
  // runs inside K.
  float operator()(const float* v, const uint8_t* off, int64_t full_slots, int64_t slots,
                   int64_t K, const float* x) const {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t s = 0, col0 = 0;
    for (; s + 2 * P_ <= full_slots && col0 + span_ + 32 <= K; s += 2 * P_, col0 += 2 * span_) {
      _mm_prefetch(reinterpret_cast<const char*>(v + s + kGemvPrefetch), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(v + s + kGemvPrefetch + 16), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(off + s + kGemvPrefetch), _MM_HINT_T0);
      acc0 = step(v, off, s, x + col0, acc0);
      acc1 = step(v, off, s + P_, x + col0 + span_, acc1);
    }
    if (s + P_ <= full_slots && col0 + 32 <= K) {
      acc0 = step(v, off, s, x + col0, acc0);
      s += P_;
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) +
           nm_tail(v, off, n_, m_, s, slots, K, x);
  }

 private:
  // acc += the P slots from s times x at their columns (xs: the step's first column).
  __m512 step(const float* v, const uint8_t* off, int64_t s, const float* xs, __m512 acc) const {
    const __m512i idx =
        _mm512_add_epi32(lane_base_, _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(live_, off + s)));
    const __m512 xg = _mm512_permutex2var_ps(_mm512_loadu_ps(xs), idx, _mm512_loadu_ps(xs + 16));
    return _mm512_mask3_fmadd_ps(_mm512_maskz_loadu_ps(live_, v + s), xg, acc, live_);
  }

  int n_, m_, P_;
  int64_t span_;
  __mmask16 live_;
  __m512i lane_base_;
};
#endif  // GSPRUNE_AVX512

// One BSR row (row rr of its block row) for N == 1 with C % 8 == 0: contiguous loads of
// the block's values and of x.
inline float bsr_dot(const int32_t* bcol, const float* values, int64_t b0, int64_t b1, int R,
                     int C, int rr, int64_t K, const float* x) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  float tail = 0.0f;
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t c0 = static_cast<int64_t>(bcol[b]) * C;
    const float* vb = values + (b * R + rr) * C;
    if (c0 + C <= K) {
      for (int cc = 0; cc < C; cc += 8) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(vb + cc), _mm256_loadu_ps(x + c0 + cc), acc0);
        std::swap(acc0, acc1);
      }
    } else {
      for (int64_t cc = 0; cc < K - c0; ++cc) tail += vb[cc] * x[c0 + cc];
    }
  }
  return hsum(_mm256_add_ps(acc0, acc1)) + tail;
}

// One row, one column tile of NV vectors: out[0 : W*NV] = sum over the row's entries
// (v, col) of v * x[col * ldx : + W*NV] (x points at the tile's first column; Masked: the
// last vector holds the columns in `mask`). One accumulator per vector: this serves only
// the few rows that N:M's chunks of L leave.
template <class Vec, int NV, bool Masked, class Visit>
inline void row_tile(Visit&& visit, const float* x, int64_t ldx, typename Vec::Mask mask,
                     float* out) {
  RegisterTile<Vec, 1, NV, Masked> tile(mask);
  visit([&](float v, int64_t col) { tile.fma(0, &v, x + col * ldx); });
  tile.store(out, 0);
}

// N > 1, rows [r0, r1) with `nnz` stored entries, one row at a time over column tiles
// (for_each_column_tile); visit_for(r) gives row r's entry visitor (see row_scalar).
// x holds N columns of rows `ldx` floats apart, y the same N columns of rows `ldy` apart
// (a column range of the product when the threads split the columns:
// split_packed_columns); so do the other SpMM kernels here.
template <class VisitFor>
void rows_spmm(int64_t r0, int64_t r1, int64_t nnz, VisitFor&& visit_for, const float* x,
               int64_t ldx, int64_t K, int64_t N, float* y, int64_t ldy) {
  using Vec = TileVec;
  auto tile = [&](auto nv, auto masked, int64_t n0, const float* xt, int64_t ldx, auto mask) {
    for (int64_t r = r0; r < r1; ++r)
      row_tile<Vec, decltype(nv)::value, decltype(masked)::value>(visit_for(r), xt, ldx, mask,
                                                                  y + r * ldy + n0);
  };
  for_each_column_tile<Vec, Vec::kVectors>(x, ldx, K, N, nnz, tile);
}

// BSR, N > 1: row rr of the block row whose blocks are [b0, b1) times one column tile of
// NV vectors (as row_tile). A block's C consecutive columns go to S accumulator sets in
// unrolled turns, summed at the end (8 sets for a one-vector tile, else 4, a divisor of
// the usual block widths): about 8 or more FMA chains in flight, where one set of NV (a
// single vector at N <= 16) would leave the FMA pipes waiting on each FMA's latency.
template <class Vec, int NV, bool Masked>
inline void bsr_row_tile(const int32_t* bcol, const float* values, int64_t b0, int64_t b1, int R,
                         int C, int rr, int64_t K, const float* x, int64_t ldx,
                         typename Vec::Mask mask, float* out) {
  constexpr int S = NV == 1 ? 8 : 4;
  RegisterTile<Vec, S, NV, Masked> sets(mask);
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t c0 = static_cast<int64_t>(bcol[b]) * C;
    const float* vb = values + (b * R + rr) * C;
    const float* xb = x + c0 * ldx;
    // The last block column may overhang K: its padding columns have no x row.
    const int64_t width = std::min<int64_t>(C, K - c0);
    int64_t cc = 0;
    for (; cc + S <= width; cc += S) {
#pragma GCC unroll 8
      for (int s = 0; s < S; ++s) sets.fma(s, vb + cc + s, xb + (cc + s) * ldx);
    }
    for (; cc < width; ++cc) sets.fma(0, vb + cc, xb + cc * ldx);
  }
  sets.sum_rows();
  sets.store(out, 0, 1);
}

// BSR, N > 1, rows [r0, r1) over column tiles (for_each_column_tile).
void bsr_spmm(const int32_t* crow, const int32_t* col, const float* values, int R, int C,
              int64_t r0, int64_t r1, int64_t K, const float* x, int64_t ldx, int64_t N,
              float* y, int64_t ldy) {
  using Vec = TileVec;
  auto tile = [&](auto nv, auto masked, int64_t n0, const float* xt, int64_t ldx, auto mask) {
    for (int64_t r = r0; r < r1; ++r)
      bsr_row_tile<Vec, decltype(nv)::value, decltype(masked)::value>(
          col, values, crow[r / R], crow[r / R + 1], R, C, static_cast<int>(r % R), K, xt, ldx,
          mask, y + r * ldy + n0);
  };
  const int64_t blocks = crow[(r1 + R - 1) / R] - crow[r0 / R];
  for_each_column_tile<Vec, Vec::kVectors>(x, ldx, K, N, blocks * R * C, tile);
}

// N:M, one chunk of L rows (S slots each, row stride S) times one column tile of NV
// vectors: the rows walk their slots in step, L*NV accumulators in registers (like the
// lanes of the GS kernel), so the FMAs of L rows overlap. Runs [0, runs) lie inside K;
// a run overhanging K (K % m != 0) is done slot by slot with a column check, since its
// slots past K hold no defined value.
template <class Vec, int L, int NV, bool Masked>
inline void nm_chunk_tile(const float* v, const uint8_t* off, int64_t S, int64_t runs, int n,
                          int m, int64_t K, const float* x, int64_t ldx, float* out,
                          int64_t ldy, typename Vec::Mask mask) {
  RegisterTile<Vec, L, NV, Masked> tile(mask);
  for (int64_t q = 0; q < runs; ++q) {
    const float* xq = x + q * m * ldx;
    for (int64_t s = q * n; s < (q + 1) * n; ++s) {
#pragma GCC unroll 8
      for (int i = 0; i < L; ++i)
        tile.fma(i, v + i * S + s, xq + static_cast<int64_t>(off[i * S + s]) * ldx);
    }
  }
  for (int64_t s = runs * n; s < S; ++s) {
    for (int i = 0; i < L; ++i) {
      const int64_t col = runs * m + off[i * S + s];
      if (col < K) tile.fma(i, v + i * S + s, x + col * ldx);
    }
  }
  tile.store(out, ldy);
}

// N:M, N > 1, rows [r0, r1): chunks of the tile's rows (nm_chunk_tile) over column tiles
// (for_each_column_tile); the last (r1 - r0) mod L rows through rows_spmm.
template <class VisitFor>
void nm_spmm(const float* values, const uint8_t* offsets, int n, int m, int64_t runs, int64_t r0,
             int64_t r1, VisitFor&& visit_for, const float* x, int64_t ldx, int64_t K, int64_t N,
             float* y, int64_t ldy) {
  using Vec = TileVec;
  constexpr int L = Vec::kLanes;
  const int64_t S = runs * n, full_runs = K / m, chunked = r0 + (r1 - r0) / L * L;
  auto tile = [&](auto nv, auto masked, int64_t n0, const float* xt, int64_t ldx, auto mask) {
    for (int64_t r = r0; r < chunked; r += L)
      nm_chunk_tile<Vec, L, decltype(nv)::value, decltype(masked)::value>(
          values + r * S, offsets + r * S, S, full_runs, n, m, K, xt, ldx, y + r * ldy + n0, ldy,
          mask);
  };
  if (chunked > r0)
    for_each_column_tile<Vec, Vec::kVectors>(x, ldx, K, N, (chunked - r0) * S, tile);
  if (chunked < r1) rows_spmm(chunked, r1, (r1 - chunked) * S, visit_for, x, ldx, K, N, y, ldy);
}

#endif  // GSPRUNE_AVX2

// y = W x for rows [r0, r1) where no SpMM kernel runs (N == 1, or the portable path),
// given row r's entry visitor by visit_for(r) and, for N == 1, its SIMD dot product by
// dot(r) (has_dot false: the visitor).
template <class VisitFor, class Dot>
void rows_product(int64_t r0, int64_t r1, VisitFor&& visit_for, Dot&& dot, bool has_dot,
                  const float* x, int64_t ldx, int64_t K, int64_t N, float* y, bool simd) {
#if GSPRUNE_AVX2
  if (simd && has_dot) {
    for (int64_t r = r0; r < r1; ++r) y[r] = dot(r);
    return;
  }
#else
  (void)simd, (void)dot, (void)has_dot, (void)K;  // only the portable path is compiled
#endif
  for (int64_t r = r0; r < r1; ++r) row_scalar(visit_for(r), x, ldx, N, y + r * N);
}

}  // namespace

void bsr_matmul(const int32_t* crow, const int32_t* col, const float* values, int R, int C,
                int64_t M, int64_t K, const float* x, int64_t ldx, int64_t N, float* y,
                int threads, bool simd) {
  const int64_t block_rows = (M + R - 1) / R;
  // Row r is row r % R of block row r / R.
  auto visit_for = [&](int64_t r) {
    return [&, r](auto&& f) {
      const int64_t q = r / R, rr = r % R;
      for (int64_t b = crow[q]; b < crow[q + 1]; ++b) {
        const int64_t c0 = static_cast<int64_t>(col[b]) * C;
        const float* vb = values + (b * R + rr) * C;
        // The last block column may overhang K: its padding columns have no x row.
        const int64_t width = std::min<int64_t>(C, K - c0);
        for (int64_t cc = 0; cc < width; ++cc) f(vb[cc], c0 + cc);
      }
    };
  };
  auto dot = [&](int64_t r) -> float {
#if GSPRUNE_AVX2
    return bsr_dot(col, values, crow[r / R], crow[r / R + 1], R, C, static_cast<int>(r % R), K, x);
#else
    (void)r;
    return 0.0f;
#endif
  };
#if GSPRUNE_AVX2
  if (simd && split_packed_columns<TileVec, TileVec::kVectors>(
                  K, N, int64_t{crow[block_rows] - crow[0]} * R * C, threads,
                  [&](int64_t n0, int64_t n1) {
                    bsr_spmm(crow, col, values, R, C, 0, M, K, x + n0, ldx, n1 - n0, y + n0, N);
                  }))
    return;
#endif
  parallel_units(block_rows, crow, threads, [&](int64_t q0, int64_t q1) {
#if GSPRUNE_AVX2
    if (simd && N > 1)
      return bsr_spmm(crow, col, values, R, C, q0 * R, std::min(q1 * R, M), K, x, ldx, N, y, N);
#endif
    rows_product(q0 * R, std::min(q1 * R, M), visit_for, dot, N == 1 && C % 8 == 0, x, ldx, K, N,
                 y, simd);
  });
}

void nm_matmul(const float* values, const uint8_t* offsets, int n, int m, int64_t M, int64_t K,
               const float* x, int64_t ldx, int64_t N, float* y, int threads, bool simd) {
  const int64_t runs = (K + m - 1) / m, slots = runs * n;
  auto visit_for = [&](int64_t r) {
    return [&, r](auto&& f) {
      const float* v = values + r * slots;
      const uint8_t* off = offsets + r * slots;
      for (int64_t q = 0; q < runs; ++q) {
        for (int j = 0; j < n; ++j) {
          const int64_t s = q * n + j, col = q * m + off[s];
          if (col < K) f(v[s], col);  // only the run overhanging K can fail this
        }
      }
    };
  };
  // Row dots: by permutes where AVX-512 is compiled in and a whole run fits a step
  // (NmPermuteDot::applies), else by gathers (8 % n == 0); other rows through the visitor.
#if GSPRUNE_AVX512
  const NmPermuteDot permute_dot(n, m);
  const bool permute = permute_dot.applies();
#else
  const bool permute = false;
#endif
  auto dot = [&](int64_t r) -> float {
#if GSPRUNE_AVX2
    const float* v = values + r * slots;
    const uint8_t* off = offsets + r * slots;
#if GSPRUNE_AVX512
    if (permute) return permute_dot(v, off, K / m * n, slots, K, x);
#endif
    return nm_dot(v, off, n, m, K / m * n, slots, K, x);
#else
    (void)r;
    return 0.0f;
#endif
  };
#if GSPRUNE_AVX2
  if (simd && split_packed_columns<TileVec, TileVec::kVectors>(
                  K, N, M * slots, threads, [&](int64_t n0, int64_t n1) {
                    nm_spmm(values, offsets, n, m, runs, 0, M, visit_for, x + n0, ldx, K, n1 - n0,
                            y + n0, N);
                  }))
    return;
#endif
  parallel_units<int64_t>(M, nullptr, threads, [&](int64_t r0, int64_t r1) {
#if GSPRUNE_AVX2
    if (simd && N > 1)
      return nm_spmm(values, offsets, n, m, runs, r0, r1, visit_for, x, ldx, K, N, y, N);
#endif
    rows_product(r0, r1, visit_for, dot, N == 1 && (permute || 8 % n == 0), x, ldx, K, N, y,
                 simd);
  });
}

}  // namespace gsprune
