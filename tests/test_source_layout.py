"""The C++ layers (docs/architecture.md) as the builds see them: the TFLM
make fragment compiles exactly the training layers, and nothing it compiles
includes the standalone runtime or the forward op wrappers (Bazel enforces
the same through its per-layer targets)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OPS_CC = ROOT / "ops_cc"


def _make_fragment_sources() -> set[Path]:
    text = (OPS_CC / "tflm" / "tflm_train.inc").read_text()
    block = text.split("TFLM_TRAIN_CC_SRCS :=", 1)[1].split("\n\n", 1)[0]
    files = set()
    for item in re.findall(r"\$\(TFLM_TRAIN_ROOT\)/(\S+?)\)?\s*\\?$", block, flags=re.M):
        files.update(ROOT.glob(item.rstrip(")")))
    return files


def _includes(path: Path) -> set[Path]:
    return {ROOT / m for m in re.findall(r'#include "(ops_cc/[^"]+)"', path.read_text())}


def test_tflm_fragment_compiles_exactly_the_training_layers():
    expected = ({p for d in ("core", "kernels") for p in (OPS_CC / d).rglob("*.cc")}
                | set((OPS_CC / "ops" / "training").glob("*.cc"))
                | {OPS_CC / "ops" / "op_util.cc", OPS_CC / "ops" / "training_ops.cc"}
                | set((OPS_CC / "tflm").glob("*.cc")))
    sources = _make_fragment_sources()
    assert sources == expected
    # TFLM archives objects by file name: two sources of one name would
    # replace each other's member.
    names = [p.name for p in sources]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_training_layers_do_not_include_the_standalone_runtime():
    seen, todo = set(), list(_make_fragment_sources())
    while todo:  # every header reachable from the fragment's sources
        path = todo.pop()
        for header in _includes(path) - seen:
            seen.add(header)
            todo.append(header)
            if header.suffix == ".h" and header.with_suffix(".cc").exists():
                todo.append(header.with_suffix(".cc"))
    forbidden = [h for h in seen if h.is_relative_to(OPS_CC / "runtime")
                 or h.is_relative_to(OPS_CC / "ops" / "forward")
                 or h == OPS_CC / "ops" / "forward_ops.h"]
    assert forbidden == []
    assert OPS_CC / "ops" / "op_util.h" in seen  # the walk did reach the ops


def test_every_op_wrapper_is_registered_once():
    registry = (OPS_CC / "ops" / "training_ops.cc").read_text()
    for path in (OPS_CC / "ops" / "training").glob("*.cc"):
        for kernel in re.findall(r"extern const OpKernel (k\w+) =", path.read_text()):
            assert registry.count(f"&{kernel},") == 1, (path.name, kernel)
    forward = (OPS_CC / "ops" / "forward_ops.cc").read_text()
    for path in (OPS_CC / "ops" / "forward").glob("*.cc"):
        for kernel in re.findall(r"extern const OpKernel (k\w+) =", path.read_text()):
            assert forward.count(f"return &{kernel};") == 1, (path.name, kernel)


def test_the_converter_accepts_exactly_the_forward_ops_the_runtime_has():
    """graph.FORWARD_OPS (what may sit in a frozen prefix) = the builtin codes
    ops_cc/ops/forward_ops.cc maps to a kernel, by their TFLite names
    (ops_cc/runtime/model.cc BuiltinName)."""
    from tflm_train.converter import graph

    names = dict(re.findall(r"case (kBuiltin\w+): return \"(\w+)\";",
                            (OPS_CC / "runtime" / "model.cc").read_text()))
    registered = re.findall(r"case (kBuiltin\w+):",
                            (OPS_CC / "ops" / "forward_ops.cc").read_text())
    assert registered and all(code in names for code in registered)
    assert sorted(names[code] for code in registered) == sorted(graph.FORWARD_OPS)
