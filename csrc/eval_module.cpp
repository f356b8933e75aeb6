// knet._eval_C: the torch-free build of the evaluation cores (RLE codec, COCO matching and
// accumulation, PNG id decoding, PQ, mIoU histograms). The same op folders are also compiled
// into knet._C; this second, small module exists so that `knet eval` and the evaluation API do
// not pay for loading torch (about 0.5 GB of resident memory and a second of CPU), which would
// dominate the end-to-end time of COCO and PQ evaluation. setup.py builds it from
// csrc/ops/{rle,coco_eval,png,pq_eval,semantic_eval} with KNET_EVAL_MODULE defined; inside
// knet._C this file compiles to nothing.
#ifdef KNET_EVAL_MODULE
#include <pybind11/pybind11.h>

#include "knet/bindings.h"

#ifndef TORCH_EXTENSION_NAME
#define TORCH_EXTENSION_NAME _eval_C
#endif

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "knet evaluation cores (torch-free build)";
  knet::run_bindings(m);
}
#endif  // KNET_EVAL_MODULE
