// scripts/bench_scatter.py: what bounds a CPU kernel that follows the groups of gs_free.
// Not product code: MODE 1 and 2 compute wrong results on purpose, to time a loop
// without its y stores (1) or without any y traffic (2).
#include <torch/extension.h>

#include "kernels.h"

namespace {

using Vec = gsprune::TileVec;
constexpr int W = Vec::W;

// Every stored entry p of groups [0, G): y[row] += v * x[col] on a packed column tile of NV
// vectors. MODE 0: load x, load y, FMA, store y (the scatter kernel gsprune ran until
// 2026-12-02). MODE 1: y loaded, not stored. MODE 2: no y at all. Modes 1 and 2 add into
// four register sets in turn (as many independent chains as gs's 4-lane tile).
template <int NV, int MODE, typename Idx>
void scatter_tile(const float* val, const Idx* col, const Idx* row, int64_t entries,
                  const float* xp, int64_t wp, float* yp) {
  typename Vec::T sink[4][NV];
  for (auto& set : sink)
    for (auto& v : set) v = Vec::zero();
  for (int64_t p0 = 0; p0 + 4 <= entries; p0 += 4) {
#pragma GCC unroll 4
    for (int a = 0; a < 4; ++a) {
      const int64_t p = p0 + a;
      const float* xr = xp + static_cast<int64_t>(col[p]) * wp;
      float* yr = yp + static_cast<int64_t>(row[p]) * wp;
      const auto b = Vec::broadcast(val + p);
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) {
        const auto xv = Vec::load(xr + W * j);
        if constexpr (MODE == 0) Vec::store(yr + W * j, Vec::fmadd(b, xv, Vec::load(yr + W * j)));
        if constexpr (MODE == 1) sink[a][j] = Vec::fmadd(b, xv, Vec::load(yr + W * j));
        if constexpr (MODE == 2) sink[a][j] = Vec::fmadd(b, xv, sink[a][j]);
      }
    }
  }
  for (int a = 0; a < 4; ++a)  // keep the sinks alive
    for (int j = 0; j < NV; ++j) Vec::store(yp + W * j, Vec::fmadd(sink[a][j], sink[a][j], Vec::load(yp + W * j)));
}

// y[M, N] from gs_free's arrays (values, index = columns, lane_index = rows; G*V entries).
at::Tensor scatter_matmul(const at::Tensor& values, const at::Tensor& index,
                          const at::Tensor& lane_index, const at::Tensor& x, int64_t M,
                          int64_t mode) {
  TORCH_CHECK(index.scalar_type() == at::kShort && lane_index.scalar_type() == at::kShort);
  const int64_t K = x.size(0), N = x.size(1), entries = values.numel();
  constexpr int64_t tile = W * Vec::kTile;
  at::Tensor y = at::empty({M, N}, x.options());
  gsprune::Scratch xp(K * tile), yp(M * tile);
  for (int64_t n0 = 0; n0 < N; n0 += tile) {
    const int64_t w = std::min(tile, N - n0), wp = gsprune::round_up(w, W);
    gsprune::pack_columns(x.data_ptr<float>(), K, N, n0, w, wp, xp.data());
    std::fill(yp.data(), yp.data() + M * wp, 0.0f);
    gsprune::with_vectors<Vec::kTile>(wp / W, [&](auto nv) {
      constexpr int NV = decltype(nv)::value;
      auto run = [&](auto m) {
        scatter_tile<NV, decltype(m)::value>(values.data_ptr<float>(), index.data_ptr<int16_t>(),
                                             lane_index.data_ptr<int16_t>(), entries, xp.data(),
                                             wp, yp.data());
      };
      if (mode == 0) run(gsprune::IntC<0>{});
      else if (mode == 1) run(gsprune::IntC<1>{});
      else run(gsprune::IntC<2>{});
    });
    float* out = y.data_ptr<float>();
    for (int64_t r = 0; r < M; ++r)
      std::copy(yp.data() + r * wp, yp.data() + r * wp + w, out + r * N + n0);
  }
  return y;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, module) { module.def("scatter_matmul", &scatter_matmul); }
