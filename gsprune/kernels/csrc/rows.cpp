// Row-wise kernels for the comparison formats: CSR, BSR (R x C blocks) and N:M.
// Each output row is a list of (value, column) entries; N == 1 has a dedicated SIMD dot
// product per format, N > 1 uses the shared register-tiled row product (row_simd).
#include <utility>

#include "kernels.h"

namespace gsprune {
namespace {

#if GSPRUNE_AVX2

// sum_p values[p] * x[col[p]] over p < len: 8 gathered lanes per step.
inline float csr_dot(const float* values, const int32_t* col, int64_t len, const float* x) {
  __m256 acc = _mm256_setzero_ps();
  int64_t p = 0;
  for (; p + 8 <= len; p += 8)
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(values + p), gather8(x, col + p), acc);
  float sum = hsum(acc);
  for (; p < len; ++p) sum += values[p] * x[col[p]];
  return sum;
}

// N:M row dot, for 8 % n == 0: slot s lies in run s / n, so the 8 slots from s0 (a
// multiple of 8) have columns (s0 / n) * m + (lane / n) * m + offset. Slots past
// `full_slots` belong to the run that overhangs K and are checked one by one.
inline float nm_dot(const float* v, const uint8_t* off, int n, int m, int64_t full_slots,
                    int64_t slots, int64_t K, const float* x) {
  alignas(32) int32_t base[8];
  for (int lane = 0; lane < 8; ++lane) base[lane] = lane / n * m;
  const __m256i lane_base = _mm256_load_si256(reinterpret_cast<const __m256i*>(base));
  __m256 acc = _mm256_setzero_ps();
  int64_t s = 0;
  for (; s + 8 <= full_slots; s += 8) {
    const __m128i o8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(off + s));
    const __m256i cols = _mm256_add_epi32(
        _mm256_add_epi32(_mm256_set1_epi32(static_cast<int32_t>(s / n * m)), lane_base),
        _mm256_cvtepu8_epi32(o8));
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(v + s), _mm256_i32gather_ps(x, cols, 4), acc);
  }
  float sum = hsum(acc);
  for (; s < slots; ++s) {
    const int64_t col = s / n * m + off[s];
    if (col < K) sum += v[s] * x[col];
  }
  return sum;
}

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

#endif  // GSPRUNE_AVX2

// y[r, :] for a row given by its entry visitor: the SIMD row product or the portable one.
template <class Visit>
inline void row_product(Visit&& visit, const float* x, int64_t N, float* yrow, bool simd) {
#if GSPRUNE_AVX2
  if (simd && N > 1) return row_simd(visit, x, N, yrow);
#else
  (void)simd;  // only the portable path is compiled
#endif
  row_scalar(visit, x, N, yrow);
}

}  // namespace

void csr_matmul(const int32_t* crow, const int32_t* col, const float* values, int64_t M,
                const float* x, int64_t N, float* y, int threads, bool simd) {
  parallel_units(M, crow, threads, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t p0 = crow[r], p1 = crow[r + 1];
#if GSPRUNE_AVX2
      if (simd && N == 1) {
        y[r] = csr_dot(values + p0, col + p0, p1 - p0, x);
        continue;
      }
#endif
      auto visit = [&](auto&& f) {
        for (int64_t p = p0; p < p1; ++p) f(values[p], static_cast<int64_t>(col[p]));
      };
      row_product(visit, x, N, y + r * N, simd);
    }
  });
}

void bsr_matmul(const int32_t* crow, const int32_t* col, const float* values, int R, int C,
                int64_t M, int64_t K, const float* x, int64_t N, float* y, int threads,
                bool simd) {
  const int64_t block_rows = (M + R - 1) / R;
  parallel_units(block_rows, crow, threads, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t b0 = crow[q], b1 = crow[q + 1];
      for (int rr = 0; rr < R && q * R + rr < M; ++rr) {
        const int64_t r = q * R + rr;
#if GSPRUNE_AVX2
        if (simd && N == 1 && C % 8 == 0) {
          y[r] = bsr_dot(col, values, b0, b1, R, C, rr, K, x);
          continue;
        }
#endif
        auto visit = [&](auto&& f) {
          for (int64_t b = b0; b < b1; ++b) {
            const int64_t c0 = static_cast<int64_t>(col[b]) * C;
            const float* vb = values + (b * R + rr) * C;
            // The last block column may overhang K: its padding columns have no x row.
            const int64_t width = std::min<int64_t>(C, K - c0);
            for (int64_t cc = 0; cc < width; ++cc) f(vb[cc], c0 + cc);
          }
        };
        row_product(visit, x, N, y + r * N, simd);
      }
    }
  });
}

void nm_matmul(const float* values, const uint8_t* offsets, int n, int m, int64_t M, int64_t K,
               const float* x, int64_t N, float* y, int threads, bool simd) {
  const int64_t runs = (K + m - 1) / m, slots = runs * n;
  parallel_units<int64_t>(M, nullptr, threads, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* v = values + r * slots;
      const uint8_t* off = offsets + r * slots;
#if GSPRUNE_AVX2
      if (simd && N == 1 && 8 % n == 0) {
        y[r] = nm_dot(v, off, n, m, K / m * n, slots, K, x);
        continue;
      }
#endif
      auto visit = [&](auto&& f) {
        for (int64_t q = 0; q < runs; ++q) {
          for (int j = 0; j < n; ++j) {
            const int64_t s = q * n + j, col = q * m + off[s];
            if (col < K) f(v[s], col);  // only the run overhanging K can fail this
          }
        }
      };
      row_product(visit, x, N, y + r * N, simd);
    }
  });
}

}  // namespace gsprune
