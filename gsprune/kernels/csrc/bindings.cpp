// Python bindings: unpack tensors, allocate y, call the raw-pointer kernels.
// gsprune/kernels/cpu.py validates every argument first (user-facing ValueErrors); the
// TORCH_CHECKs here only guard against internal misuse.
#include <torch/extension.h>

#include "kernels.h"

namespace {

void check_tensor(const at::Tensor& t, at::ScalarType dtype, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.is_contiguous() && t.scalar_type() == dtype, name,
              " must be a contiguous CPU tensor of dtype ", dtype, ", got ", t.scalar_type());
}

// The operands of y = W @ x: x: float32[K, N] whose rows are contiguous (x.stride(1) == 1),
// possibly padded (x.stride(0) >= N); the row stride the kernels get; and an
// uninitialised y: float32[M, N]. A one-column x is read as a vector (row stride 1) and
// K == 1 leaves x.stride(0) arbitrary, so those are copied contiguous first (the Python
// layer has already refused any other layout).
struct Operands {
  at::Tensor x;
  int64_t ldx;
  at::Tensor y;
};

Operands operands_for(const at::Tensor& x, int64_t M, int64_t K) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat && x.dim() == 2 &&
                  x.size(0) == K,
              "x must be a float32 CPU tensor [", K, ", N], got ", x.scalar_type(), " ",
              x.sizes());
  const int64_t N = x.size(1);
  at::Tensor y = at::empty({M, N}, x.options());
  if (N == 1 || K == 1) return {x.contiguous(), N, y};
  TORCH_CHECK(x.stride(1) == 1 && x.stride(0) >= N,
              "x's rows must be contiguous (strides [ld >= N, 1]), got strides ", x.strides());
  return {x, x.stride(0), y};
}

// GS variant "gs" (row_of = None), or a row plan (gsprune/kernels/row_plan.py): "gs"
// bands whose lane j owns y row row_of[j].
at::Tensor gs_matmul(const at::Tensor& band_ptr, const at::Tensor& values, const at::Tensor& index,
                     const c10::optional<at::Tensor>& row_of, int64_t V, int64_t M, int64_t K,
                     const at::Tensor& x, int64_t threads, bool simd) {
  check_tensor(band_ptr, at::kLong, "band_ptr");
  check_tensor(values, at::kFloat, "values");
  check_tensor(index, index.scalar_type(), "index");
  const int32_t* rows = nullptr;
  if (row_of.has_value()) {
    check_tensor(*row_of, at::kInt, "row_of");
    TORCH_CHECK(row_of->numel() == M, "row_of must hold M = ", M, " rows, got ", row_of->numel());
    rows = row_of->data_ptr<int32_t>();
  }
  const Operands in = operands_for(x, M, K);
  const int64_t n_bands = band_ptr.numel() - 1, N = x.size(1);
  auto run = [&](auto zero) {
    using Idx = decltype(zero);
    gsprune::gs_rows_matmul<Idx>(band_ptr.data_ptr<int64_t>(), n_bands, values.data_ptr<float>(),
                                 index.data_ptr<Idx>(), V, in.x.data_ptr<float>(), in.ldx, K, N,
                                 in.y.data_ptr<float>(), M, threads, simd, rows);
  };
  if (index.scalar_type() == at::kShort) run(int16_t{});
  else if (index.scalar_type() == at::kInt) run(int32_t{});
  else TORCH_CHECK(false, "GS index must be int16 or int32, got ", index.scalar_type());
  return in.y;
}

at::Tensor bsr_matmul(const at::Tensor& crow, const at::Tensor& col, const at::Tensor& values,
                      int64_t R, int64_t C, int64_t M, int64_t K, const at::Tensor& x,
                      int64_t threads, bool simd) {
  check_tensor(crow, at::kInt, "crow_indices");
  check_tensor(col, at::kInt, "col_indices");
  check_tensor(values, at::kFloat, "values");
  const Operands in = operands_for(x, M, K);
  gsprune::bsr_matmul(crow.data_ptr<int32_t>(), col.data_ptr<int32_t>(), values.data_ptr<float>(),
                      R, C, M, K, in.x.data_ptr<float>(), in.ldx, x.size(1),
                      in.y.data_ptr<float>(), threads, simd);
  return in.y;
}

at::Tensor nm_matmul(const at::Tensor& values, const at::Tensor& offsets, int64_t n, int64_t m,
                     int64_t M, int64_t K, const at::Tensor& x, int64_t threads, bool simd) {
  check_tensor(values, at::kFloat, "values");
  check_tensor(offsets, at::kByte, "indices");
  const Operands in = operands_for(x, M, K);
  gsprune::nm_matmul(values.data_ptr<float>(), offsets.data_ptr<uint8_t>(), n, m, M, K,
                     in.x.data_ptr<float>(), in.ldx, x.size(1), in.y.data_ptr<float>(), threads,
                     simd);
  return in.y;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, module) {
  module.doc() = "gsprune compiled CPU kernels: y[M, N] = W @ x[K, N] per sparse format";
  module.def("simd_isa", &gsprune::simd_isa, "'avx2' or 'scalar': what simd=True runs");
  module.def("gs_matmul", &gs_matmul);
  module.def("bsr_matmul", &bsr_matmul);
  module.def("nm_matmul", &nm_matmul);
}
