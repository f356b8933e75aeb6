// pybind11 bindings of the PNG scanline decoder (knet._C.png_*). Python side: knet/evaluation/png.py
// (chunk parsing and inflate; zlib releases the GIL, and so do these functions).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "knet/bindings.h"
#include "ops/png/inflate_core.h"
#include "ops/png/png_core.h"

namespace py = pybind11;

namespace {

// inflated IDAT bytes -> [h, w, channels] uint8 (channels == 1: [h, w])
py::array_t<uint8_t> unfilter(py::buffer raw, uint32_t h, uint32_t w, uint32_t channels) {
  py::buffer_info info = raw.request();
  std::vector<py::ssize_t> shape = {static_cast<py::ssize_t>(h), static_cast<py::ssize_t>(w)};
  if (channels != 1) shape.push_back(channels);
  py::array_t<uint8_t> out(shape);
  uint8_t* dst = out.mutable_data();
  bool ok;
  {
    py::gil_scoped_release release;
    ok = knet::png::unfilter(static_cast<const uint8_t*>(info.ptr), static_cast<size_t>(info.size * info.itemsize), h, w,
                             channels, dst);
  }
  if (!ok) throw py::value_error("corrupt PNG data (bad filter type or truncated image data)");
  return out;
}

// inflated IDAT bytes of an RGB/RGBA image -> [h, w] uint32 panoptic ids (R + 256 G + 256^2 B)
py::array_t<uint32_t> unfilter_ids(py::buffer raw, uint32_t h, uint32_t w, uint32_t channels) {
  if (channels < 3) throw py::value_error("panoptic PNGs must be RGB or RGBA");
  py::buffer_info info = raw.request();
  py::array_t<uint32_t> out({static_cast<py::ssize_t>(h), static_cast<py::ssize_t>(w)});
  uint32_t* dst = out.mutable_data();
  bool ok;
  {
    py::gil_scoped_release release;
    std::vector<uint8_t> pix(static_cast<size_t>(h) * w * channels);
    ok = knet::png::unfilter(static_cast<const uint8_t*>(info.ptr), static_cast<size_t>(info.size * info.itemsize), h, w,
                             channels, pix.data());
    if (ok) knet::png::rgb_to_id(pix.data(), static_cast<size_t>(h) * w, channels, dst);
  }
  if (!ok) throw py::value_error("corrupt PNG data (bad filter type or truncated image data)");
  return out;
}

// a whole zlib stream -> its inflated bytes (knet's own inflate, csrc/ops/png/inflate_core)
py::bytes zlib_inflate(py::buffer data) {
  py::buffer_info info = data.request();
  std::vector<uint8_t> out;
  const char* err = nullptr;
  bool ok;
  {
    py::gil_scoped_release release;
    ok = knet::png::zlib_decompress(static_cast<const uint8_t*>(info.ptr), static_cast<size_t>(info.size * info.itemsize),
                                    out, &err);
  }
  if (!ok) throw py::value_error(err ? err : "corrupt zlib stream");
  return py::bytes(reinterpret_cast<const char*>(out.data()), out.size());
}

void bind_png(py::module_& m) {
  m.def("zlib_inflate", &zlib_inflate, py::arg("data"));
  m.def("png_unfilter", &unfilter, py::arg("raw"), py::arg("h"), py::arg("w"), py::arg("channels"));
  m.def("png_unfilter_ids", &unfilter_ids, py::arg("raw"), py::arg("h"), py::arg("w"), py::arg("channels"));
}

}  // namespace

KNET_REGISTER_BINDINGS(bind_png);
