// knet/bindings.h: self-registration of pybind11 bindings into the single knet._C module.
//
// Each op folder has one `<op>_bind.cpp` that defines a function `void f(pybind11::module_&)`
// and registers it with KNET_REGISTER_BINDINGS(f). csrc/bindings.cpp runs every registered
// function when Python imports knet._C, so adding an op means adding files, never editing a
// central list.
#pragma once

#include <pybind11/pybind11.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

namespace knet {

using BindFn = void (*)(pybind11::module_&);

struct BindingEntry {
  const char* name;
  BindFn fn;
};

inline std::vector<BindingEntry>& binding_registry() {
  static std::vector<BindingEntry> registry;
  return registry;
}

struct BindingRegistrar {
  BindingRegistrar(const char* name, BindFn fn) { binding_registry().push_back({name, fn}); }
};

// Runs every registered binding function on m, in name order, and records their names in
// m.bindings (used by knet._C and the torch-free knet._eval_C).
inline void run_bindings(pybind11::module_& m) {
  auto& entries = binding_registry();
  std::sort(entries.begin(), entries.end(),
            [](const BindingEntry& a, const BindingEntry& b) { return std::string(a.name) < std::string(b.name); });
  pybind11::list names;
  for (const auto& e : entries) {
    e.fn(m);
    names.append(e.name);
  }
  m.attr("bindings") = names;
}

}  // namespace knet

#define KNET_REGISTER_BINDINGS(fn) \
  static ::knet::BindingRegistrar knet_registrar_##fn(#fn, &fn)
