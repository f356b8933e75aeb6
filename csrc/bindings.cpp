// The one pybind11 module, knet._C. Op folders register their bindings themselves
// (see include/knet/bindings.h); this file only runs them and records build facts.
#include <torch/extension.h>

#include "knet/bindings.h"

#ifndef KNET_CUDA_ARCHS
#define KNET_CUDA_ARCHS ""
#endif

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "knet compiled ops (CPU kernels, and CUDA kernels when built with CUDA)";
#ifdef WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
  m.attr("cuda_archs") = std::string(KNET_CUDA_ARCHS);
  knet::run_bindings(m);
}
