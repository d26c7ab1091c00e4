// gsprune CPU kernels: shared helpers and the kernel entry points.
//
// Every kernel computes y[M, N] = W[M, K] @ x[K, N] with x and y row-major float32.
// The kernels take raw pointers (no torch headers here, so these files compile fast);
// bindings.cpp unpacks the tensors. The extension is compiled once per instruction set
// (gsprune/kernels/build.py: -march=x86-64-v4 for AVX-512, x86-64-v3 for AVX2/FMA, the
// compiler's baseline otherwise) and the best one the CPU runs is chosen at run time.
// `simd` selects the vector paths compiled in (GSPRUNE_AVX2, plus GSPRUNE_AVX512 for the
// 16-float tiles); the portable path is always compiled, so it runs and is tested on
// every machine.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define GSPRUNE_AVX2 1
#else
#define GSPRUNE_AVX2 0
#endif

#if GSPRUNE_AVX2 && defined(__AVX512F__) && defined(__AVX512VL__)
#define GSPRUNE_AVX512 1
#else
#define GSPRUNE_AVX512 0
#endif

namespace gsprune {

#if GSPRUNE_AVX2

// The vector types of the register tiles (SpMM, N > 1): W floats per vector, and the
// tile shape, kLanes rows by at most kVectors vectors of columns: enough independent
// accumulators to cover the FMA latency on both FMA pipes, with the broadcasts beside
// them in the register file. AVX2 4 x 3 (12 of 16 ymm; Zen 3: 4 rows x 24 columns beat
// 2 x 32 and 8 x 8); AVX-512 8 x 3 (24 of 32 zmm; Zen 5, 2026-12-02, one thread, the GS
// kernel on the conv, LSTM, Jasper and square GEMMs of bench_kernels at sparsity 0.5 and
// 0.9: 1.0-1.6x faster than 4 x 4, most where N is narrow, e.g. N = 16, where 4
// accumulators cannot cover the latency; 8 x 2, and 4 x 4 beside 8 x 2, were close but
// lost at N = 49 and 4096 x 4096).
struct Ymm {
  using T = __m256;
  using Mask = __m256i;
  static constexpr int W = 8;
  static constexpr int kLanes = 4, kVectors = 3;
  static T zero() { return _mm256_setzero_ps(); }
  static T load(const float* p) { return _mm256_loadu_ps(p); }
  static T broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static T set1(float v) { return _mm256_set1_ps(v); }
  static void store(float* p, T v) { _mm256_storeu_ps(p, v); }
  static T fmadd(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static T add(T a, T b) { return _mm256_add_ps(a, b); }
  static Mask all() { return _mm256_set1_epi32(-1); }
  // Lanes [0, count) set; count in 1..W.
  static Mask tail(int64_t count) {
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), iota);
  }
  static T load_masked(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
  static void store_masked(float* p, T v, Mask m) { _mm256_maskstore_ps(p, m, v); }
};

#if GSPRUNE_AVX512
struct Zmm {
  using T = __m512;
  using Mask = __mmask16;
  static constexpr int W = 16;
  static constexpr int kLanes = 8, kVectors = 3;
  static T zero() { return _mm512_setzero_ps(); }
  static T load(const float* p) { return _mm512_loadu_ps(p); }
  static T broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static T set1(float v) { return _mm512_set1_ps(v); }
  static void store(float* p, T v) { _mm512_storeu_ps(p, v); }
  static T fmadd(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static T add(T a, T b) { return _mm512_add_ps(a, b); }
  static Mask all() { return static_cast<Mask>(0xFFFF); }
  static Mask tail(int64_t count) { return static_cast<Mask>((1u << count) - 1u); }
  static T load_masked(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static void store_masked(float* p, T v, Mask m) { _mm512_mask_storeu_ps(p, m, v); }
};
// The SpMM tiles' vector: zmm where AVX-512 is compiled in (on the Xeon measured, twice
// the FLOPs per instruction of ymm at the same port count; see results/bench/kernels.md).
using TileVec = Zmm;
#else
using TileVec = Ymm;
#endif

#endif  // GSPRUNE_AVX2

// How far ahead (in elements) the GEMVs (GS bands, N:M rows) prefetch their values and
// indices: a large layer streams its weights from L3 or memory once per product.
constexpr int64_t kGemvPrefetch = 512;

// n rounded up to a multiple of w (a whole number of vectors).
inline int64_t round_up(int64_t n, int64_t w) { return (n + w - 1) / w * w; }

// A 64-byte aligned float buffer (packed x column tiles, output tiles); empty when n == 0.
class Scratch {
 public:
  explicit Scratch(size_t n)
      : data_(n ? static_cast<float*>(std::aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64))
                : nullptr) {}
  ~Scratch() { std::free(data_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  float* data() const { return data_; }

 private:
  float* data_;
};

// xp[K, wp] = x[0:K, n0:n0+w] with columns w..wp zero (x is [K, N] row-major): a column
// tile whose rows are dense and whole vectors (wp a multiple of the vector width), so a
// tile spans the fewest cache lines.
inline void pack_columns(const float* x, int64_t K, int64_t N, int64_t n0, int64_t w, int64_t wp,
                         float* xp) {
  for (int64_t r = 0; r < K; ++r) {
    std::memcpy(xp + r * wp, x + r * N + n0, w * sizeof(float));
    std::fill(xp + r * wp + w, xp + (r + 1) * wp, 0.0f);
  }
}

// Runs body(u0, u1) on `threads` OpenMP threads over contiguous ranges of [0, n_units).
// With `ptr` (a prefix sum, ptr[u+1] - ptr[u] = non-zeros of unit u) the ranges carry
// equal non-zeros plus units (each unit also costs its output rows); without it, equal
// unit counts. Static: the same thread always gets the same units.
template <typename P, class Body>
void parallel_units(int64_t n_units, const P* ptr, int threads, Body&& body) {
  auto begin = [&](int part, int parts) -> int64_t {
    if (part <= 0) return 0;
    if (part >= parts) return n_units;
    if (ptr == nullptr) return n_units * part / parts;
    const double total = static_cast<double>(ptr[n_units] - ptr[0]) + n_units;
    const double target = total * part / parts;
    int64_t lo = 0, hi = n_units;  // first u with weight(0..u) >= target
    while (lo < hi) {
      const int64_t mid = (lo + hi) / 2;
      if (static_cast<double>(ptr[mid] - ptr[0]) + mid < target) lo = mid + 1; else hi = mid;
    }
    return lo;
  };
  if (threads <= 1 || n_units <= 1) {
    body(int64_t{0}, n_units);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t u0 = begin(t, nt), u1 = begin(t + 1, nt);
    if (u0 < u1) body(u0, u1);
  }
}

// Portable row product: yrow[0:N] = sum over the row's entries (v, col) of v * x[col, :]
// (x's rows ldx floats apart). `visit(f)` calls f(value, column) for every stored entry.
template <class Visit>
inline void row_scalar(Visit&& visit, const float* x, int64_t ldx, int64_t N, float* yrow) {
  std::fill(yrow, yrow + N, 0.0f);
  visit([&](float v, int64_t col) {
    const float* xr = x + col * ldx;
    for (int64_t n = 0; n < N; ++n) yrow[n] += v * xr[n];
  });
}

#if GSPRUNE_AVX2

template <int V>
using IntC = std::integral_constant<int, V>;
template <bool B>
using BoolC = std::integral_constant<bool, B>;

// The indices ix[0..L) as int64. int16 indices come four per 64-bit load, split with
// register shifts: the GS loops are bound by load ports, and this saves 3 loads in 4.
template <int L, typename Idx>
inline void load_lanes(const Idx* ix, int64_t* out) {
  if constexpr (std::is_same_v<Idx, int16_t> && L % 4 == 0) {
    for (int q = 0; q < L / 4; ++q) {
      uint64_t word;
      std::memcpy(&word, ix + 4 * q, sizeof(word));
      for (int s = 0; s < 4; ++s) out[4 * q + s] = static_cast<int16_t>(word >> (16 * s));
    }
  } else {
    for (int i = 0; i < L; ++i) out[i] = ix[i];
  }
}

// x[ix[0..8)] as one vector from scalar loads and inserts: on the CPU measured (AMD
// Zen 4) ~40% faster than _mm256_i32gather_ps in the GS GEMV.
template <typename Idx>
inline __m256 gather8(const float* x, const Idx* ix) {
  int64_t c[8];
  load_lanes<8>(ix, c);
  const __m128 lo = _mm_setr_ps(x[c[0]], x[c[1]], x[c[2]], x[c[3]]);
  const __m128 hi = _mm_setr_ps(x[c[4]], x[c[5]], x[c[6]], x[c[7]]);
  return _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1);
}

template <typename Idx>
inline __m128 gather4(const float* x, const Idx* ix) {
  int64_t c[4];
  load_lanes<4>(ix, c);
  return _mm_setr_ps(x[c[0]], x[c[1]], x[c[2]], x[c[3]]);
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// f(IntC<nv>{}) for a run-time nv in 1..MaxNV <= 4 (a tile's width in vectors).
template <int MaxNV, class F>
inline void with_vectors(int64_t nv, F&& f) {
  static_assert(MaxNV >= 1 && MaxNV <= 4);
  switch (nv) {
    case 1: return f(IntC<1>{});
    case 2: if constexpr (MaxNV >= 2) return f(IntC<2>{}); else return;
    case 3: if constexpr (MaxNV >= 3) return f(IntC<3>{}); else return;
    default: if constexpr (MaxNV >= 4) return f(IntC<4>{}); else return;
  }
}

// An L x NV register tile of accumulators (L output rows, NV vectors of W columns each),
// the inner block of every SpMM chunk kernel (GS bands, N:M row chunks). Its loops are
// fully unrolled so that the accumulators live in registers (L * NV + 1 of them); the
// unroll pragmas matter: without them GCC keeps a stack copy of acc[] and stores all of it
// every step (measured 10-15% slower in the GS kernel). With `Masked`, the last vector
// covers only the columns set in `mask` (a tile that ends inside a vector): it is loaded
// and stored masked, so x and y are read and written in place without padding.
template <class Vec, int L, int NV, bool Masked = false>
struct RegisterTile {
  typename Vec::T acc[L][NV];
  typename Vec::Mask mask;

  explicit RegisterTile(typename Vec::Mask last = Vec::all()) : mask(last) {
#pragma GCC unroll 64
    for (int i = 0; i < L; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[i][j] = Vec::zero();
  }

  // Row i += (*v) * xr[0, W * NV).
  inline void fma(int i, const float* v, const float* xr) {
    const auto b = Vec::broadcast(v);
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) {
      const auto xv = Masked && j == NV - 1 ? Vec::load_masked(xr + Vec::W * j, mask)
                                            : Vec::load(xr + Vec::W * j);
      acc[i][j] = Vec::fmadd(b, xv, acc[i][j]);
    }
  }

  // Row 0 = the sum of the L rows (when the rows are accumulator sets of one output row).
  inline void sum_rows() {
#pragma GCC unroll 64
    for (int i = 1; i < L; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[0][j] = Vec::add(acc[0][j], acc[i][j]);
  }

  // out[i * ldy + c] = row i, column c, for the first `rows` rows (rows <= L).
  inline void store(float* out, int64_t ldy, int rows = L) const {
#pragma GCC unroll 64
    for (int i = 0; i < L; ++i) {
      if (i >= rows) break;
      store_row(out + i * ldy, i);
    }
  }

  // out[i][c] = row i, column c, for the first `rows` rows: rows anywhere in y (row plans).
  inline void store(float* const* out, int rows = L) const {
#pragma GCC unroll 64
    for (int i = 0; i < L; ++i) {
      if (i >= rows) break;
      store_row(out[i], i);
    }
  }

 private:
  inline void store_row(float* out, int i) const {
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) {
      if (Masked && j == NV - 1) Vec::store_masked(out + Vec::W * j, acc[i][j], mask);
      else Vec::store(out + Vec::W * j, acc[i][j]);
    }
  }
};

// The SpMM kernels (N > 1) walk x[K, N] in column tiles, outermost, so that one tile is
// reused by every row while it is hot in cache: tile(IntC<nv>, BoolC<masked>, n0, xt, ldx,
// mask) computes the output columns [n0, n0 + nv * W) (masked: the last vector only the
// columns set in `mask`, the tile ends inside it) from the tile's rows xt + k * ldx.
// The ceil(N / W) vectors are split into the fewest tiles of at most NV vectors,
// balanced (13 vectors, NV = 3: 2, 3, 2, 3, 3; never a lone vector whose few accumulators
// leave FMA pipes idle). A tile is packed (its rows copied to a dense buffer) only when
// x holds several tiles, so that a tile's rows are strided in x, and enough of the call's
// `nnz` weights read each of x's K rows to pay the copy: at least kPackReads on average,
// or kPackReadsLarge once x outgrows kPackLargeBytes (strided rows of a large x miss L2).
// Otherwise a tile is read in place (a single tile is x itself). Measured on Zen 4, one
// thread, GS: packing 64x1408 at N = 501 took 0.5 sparsity from 0.96 to 0.64 ms (0.9:
// 0.26 -> 0.24), two threads 160x2720 at 0.5 from 2.77 to 1.63 ms; packing the small conv
// GEMMs on two threads (128x1152 N = 49, 64x576 N = 196 at 0.9: 3-7 reads a row) cost
// 33-36%. On Zen 5
// packing x when it is one tile cost 30-45% (N = 16, 64).
constexpr int64_t kPackReads = 12, kPackReadsLarge = 3, kPackLargeBytes = int64_t{1} << 20;

// Whether for_each_column_tile packs the column tiles of an x[K, N] read by nnz weights.
template <class Vec, int NV>
inline bool packs_columns(int64_t K, int64_t N, int64_t nnz) {
  const int64_t vectors = (N + Vec::W - 1) / Vec::W, n_tiles = (vectors + NV - 1) / NV;
  const bool large = K * N * static_cast<int64_t>(sizeof(float)) > kPackLargeBytes;
  return n_tiles > 1 && nnz >= (large ? kPackReadsLarge : kPackReads) * K;
}

// x[K, N] whose rows are `ld` floats apart (ld >= N: x may be a column range of a wider
// matrix; the tile's n0 counts from x's first column).
template <class Vec, int NV, class Tile>
void for_each_column_tile(const float* x, int64_t ld, int64_t K, int64_t N, int64_t nnz,
                          Tile&& tile) {
  constexpr int W = Vec::W;
  const int64_t vectors = (N + W - 1) / W, n_tiles = (vectors + NV - 1) / NV;
  const bool packed = packs_columns<Vec, NV>(K, N, nnz);
  Scratch xp(packed ? static_cast<size_t>(K) * W * NV : 0);
  for (int64_t t = 0, v0 = 0; t < n_tiles; ++t) {
    const int64_t v1 = vectors * (t + 1) / n_tiles;  // this tile: vectors [v0, v1)
    const int64_t n0 = v0 * W, w = std::min(v1 * W, N) - n0;
    const float* xt = x + n0;
    int64_t ldx = ld;
    if (packed) {
      pack_columns(x, K, ld, n0, w, (v1 - v0) * W, xp.data());
      xt = xp.data();
      ldx = (v1 - v0) * W;
    }
    const auto mask = Vec::tail(w % W ? w % W : W);
    with_vectors<NV>(v1 - v0, [&](auto nv) {
      if (w % W) tile(nv, BoolC<true>{}, n0, xt, ldx, mask);
      else tile(nv, BoolC<false>{}, n0, xt, ldx, mask);
    });
    v0 = v1;
  }
}

// SpMM threading shared by every format: where every thread's share of x's columns
// (whole vectors) is still packed by for_each_column_tile, the threads split the columns
// and each runs every row, spmm(n0, n1) computing the output columns [n0, n1); split by
// rows instead, every thread would pack all of x for itself. Returns false, having run
// nothing, where the rows are to be split (one thread, N == 1, or shares read in place).
// Measured on Zen 4, two threads, GS at 0.9: Jasper's GEMMs at N = 501 0.78-0.90x the
// time; where a thread's share would be one tile read in place (128x1152 at N = 49, rows
// 196 bytes apart), splitting the columns cost 1.2x at 0.5, hence the packing condition.
template <class Vec, int NV, class Spmm>
bool split_packed_columns(int64_t K, int64_t N, int64_t nnz, int threads, Spmm&& spmm) {
  constexpr int64_t W = Vec::W;
  const int64_t vectors = (N + W - 1) / W;
  const int64_t share = std::min(N, vectors / std::max(threads, 1) * W);  // the least share
  if (N <= 1 || threads <= 1 || !packs_columns<Vec, NV>(K, share, nnz)) return false;
  parallel_units(vectors, static_cast<const int64_t*>(nullptr), threads,
                 [&](int64_t v0, int64_t v1) { spmm(v0 * W, std::min(v1 * W, N)); });
  return true;
}

#endif  // GSPRUNE_AVX2

// The y row of lane `lane` (t * V + i): row_of[lane] under a row plan, else the lane itself.
inline int64_t output_row(const int32_t* row_of, int64_t lane) {
  return row_of ? static_cast<int64_t>(row_of[lane]) : lane;
}

// "avx512", "avx2" or "scalar": what `simd=true` runs.
inline const char* simd_isa() { return GSPRUNE_AVX512 ? "avx512" : GSPRUNE_AVX2 ? "avx2" : "scalar"; }

// ---- kernel entry points (y is [M, N] row-major; x is [K, N] with rows ldx >= N floats
// apart, ldx == 1 where N == 1: a caller may pad x's rows, e.g. to whole cache lines) ----

// GS format, variant "gs": bands of V rows, lane i of a group of band t owns row t*V+i.
// band_ptr: int64[n_bands+1]; values: float[G, V]; index: Idx[G, V] (columns).
// With row_of (int32[M], a permutation of [0, M)), lane t*V+i owns row row_of[t*V+i]
// instead: the row plans of gsprune/kernels/row_plan.py.
template <typename Idx>
void gs_rows_matmul(const int64_t* band_ptr, int64_t n_bands, const float* values,
                    const Idx* index, int V, const float* x, int64_t ldx, int64_t K, int64_t N,
                    float* y, int64_t M, int threads, bool simd,
                    const int32_t* row_of = nullptr);

// values: float[n_blocks, R, C]; the last block column may overhang K (zero-padded).
void bsr_matmul(const int32_t* crow, const int32_t* col, const float* values, int R, int C,
                int64_t M, int64_t K, const float* x, int64_t ldx, int64_t N, float* y,
                int threads, bool simd);

// values: float[M, S], offsets: uint8[M, S], S = ceil(K/m)*n slots per row.
void nm_matmul(const float* values, const uint8_t* offsets, int n, int m, int64_t M, int64_t K,
               const float* x, int64_t ldx, int64_t N, float* y, int threads, bool simd);

}  // namespace gsprune
