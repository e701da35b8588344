// The native extension tflm_train._native: the host simulator (the
// standalone runtime) and, under `testing`, raw kernel entry points used by
// the gradient tests.
#include <pybind11/pybind11.h>

namespace tflm_train {
namespace python {
void BindRuntime(pybind11::module_& m);
void BindGradKernels(pybind11::module_& m);
}  // namespace python
}  // namespace tflm_train

PYBIND11_MODULE(_native, m) {
  m.doc() = "tflm-train native host runtime";
  tflm_train::python::BindRuntime(m);
  pybind11::module_ testing =
      m.def_submodule("testing", "raw kernels for gradient tests");
  tflm_train::python::BindGradKernels(testing);
}
