// Python binding of the shared-memory GS kernel (gs_smem.cu): unpack tensors, allocate y,
// launch on torch's current stream. gsprune/kernels/gpu/cuda_smem.py validates every
// argument first (user-facing ValueErrors); the TORCH_CHECKs only guard internal misuse.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/extension.h>

#include "gs_smem.h"

namespace {

at::Tensor gs_smem_matmul(const at::Tensor& band_ptr, const at::Tensor& values,
                          const at::Tensor& index, const at::Tensor& x, int64_t M, int64_t V,
                          int64_t bn) {
  for (const at::Tensor* t : {&band_ptr, &values, &index, &x})
    TORCH_CHECK(t->is_cuda() && t->is_contiguous(), "gs_smem: arrays must be contiguous on CUDA");
  TORCH_CHECK(band_ptr.scalar_type() == at::kLong, "gs_smem: band_ptr must be int64");
  TORCH_CHECK(values.scalar_type() == at::kFloat || values.scalar_type() == at::kBFloat16,
              "gs_smem: values must be float32 or bfloat16, got ", values.scalar_type());
  TORCH_CHECK(index.scalar_type() == at::kShort || index.scalar_type() == at::kInt,
              "gs_smem: index must be int16 or int32, got ", index.scalar_type());
  TORCH_CHECK(x.scalar_type() == at::kFloat && x.dim() == 2, "gs_smem: x must be float32 [K, N]");
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor y = at::empty({M, x.size(1)}, x.options());
  C10_CUDA_CHECK(gsprune::gs_smem_matmul(
      band_ptr.data_ptr<int64_t>(), band_ptr.numel() - 1, values.data_ptr(),
      values.scalar_type() == at::kBFloat16, index.data_ptr(),
      static_cast<int>(index.element_size()), static_cast<int>(V), x.data_ptr<float>(),
      x.size(0), x.size(1), y.data_ptr<float>(), M, static_cast<int>(bn),
      c10::cuda::getCurrentCUDAStream()));
  return y;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("gs_smem_matmul", &gs_smem_matmul,
        "GS (variant gs) y = W @ x with x staged in shared memory (CUDA)");
  m.def("gs_smem_bytes", &gsprune::gs_smem_bytes, "shared memory bytes of one block");
}
