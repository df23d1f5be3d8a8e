"""The type stubs of the compiled extension (``dcp/_native.pyi``) against the extension itself:
the same public names, the same parameters (names, kinds, defaults), properties where the
extension has getters, and the same exception hierarchy. Also: the package is marked typed, and
the exceptions show and pickle as ``dcp.<Name>``."""

from __future__ import annotations

import ast
import inspect
import pathlib
import pickle

import pytest

import dcp
from dcp import _native

PKG = pathlib.Path(dcp.__file__).parent
STUB = ast.parse((PKG / "_native.pyi").read_text())


def public(names):
    return {n for n in names if not n.startswith("_")}


def stub_items():
    out = {}
    for node in STUB.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            out[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = node
    return out


ITEMS = stub_items()


def literal(node):
    return None if node is None else ast.literal_eval(node)


def stub_params(fn: ast.FunctionDef, drop_first: bool):
    """(name, kind, default) of each parameter, as inspect names the kinds."""
    a = fn.args
    pos = a.posonlyargs + a.args
    defaults = [None] * (len(pos) - len(a.defaults)) + list(a.defaults)
    out = []
    for i, (p, d) in enumerate(zip(pos, defaults)):
        kind = "POSITIONAL_ONLY" if i < len(a.posonlyargs) else "POSITIONAL_OR_KEYWORD"
        out.append((p.arg, kind, literal(d) if d is not None else inspect.Parameter.empty))
    for p, d in zip(a.kwonlyargs, a.kw_defaults):
        out.append((p.arg, "KEYWORD_ONLY", literal(d) if d is not None else inspect.Parameter.empty))
    return out[1:] if drop_first else out


def runtime_params(obj):
    sig = inspect.signature(obj)
    return [(p.name, p.kind.name, p.default) for p in sig.parameters.values()]


def test_the_package_is_typed_and_ships_the_stub():
    assert (PKG / "py.typed").is_file()
    assert (PKG / "_native.pyi").is_file()


def test_the_stub_names_exactly_what_the_extension_exports():
    assert public(ITEMS) == public(dir(_native)), (
        public(ITEMS) ^ public(dir(_native))
    )


@pytest.mark.parametrize("name", sorted(n for n, v in ITEMS.items() if isinstance(v, ast.FunctionDef)))
def test_function_parameters_match(name):
    assert stub_params(ITEMS[name], drop_first=False) == runtime_params(getattr(_native, name))


CLASSES = sorted(
    n for n, v in ITEMS.items()
    if isinstance(v, ast.ClassDef) and not issubclass(getattr(_native, n), BaseException)
)


@pytest.mark.parametrize("name", CLASSES)
def test_class_members_match(name):
    cls = getattr(_native, name)
    node = ITEMS[name]
    members = {m.name: m for m in node.body if isinstance(m, ast.FunctionDef)}
    runtime = {
        k for k, v in vars(cls).items()
        if not k.startswith("_") or k in ("__len__", "__eq__")
    }
    stub_names = {k for k in members if k != "__new__"}
    assert stub_names == runtime, stub_names ^ runtime
    for k, m in members.items():
        decos = {d.id for d in m.decorator_list if isinstance(d, ast.Name)}
        if k == "__new__":
            # The constructor's parameters are the class's signature.
            assert stub_params(m, drop_first=True) == runtime_params(cls), k
            continue
        attr = inspect.getattr_static(cls, k)
        if "property" in decos:
            assert inspect.isgetsetdescriptor(attr), f"{name}.{k} is not a getter at runtime"
            continue
        assert not inspect.isgetsetdescriptor(attr), f"{name}.{k} is a getter at runtime"
        static = "staticmethod" in decos
        rt = runtime_params(getattr(cls, k))
        assert stub_params(m, drop_first=not static) == (rt if static else rt[1:]), f"{name}.{k}"


EXCEPTIONS = sorted(
    n for n, v in ITEMS.items()
    if isinstance(v, ast.ClassDef) and issubclass(getattr(_native, n), BaseException)
)


@pytest.mark.parametrize("name", EXCEPTIONS)
def test_exceptions_match_and_read_as_dcp_names(name):
    cls = getattr(_native, name)
    (base,) = ITEMS[name].bases
    assert cls.__bases__ == (getattr(_native, base.id) if base.id != "Exception" else Exception,)
    # What a traceback prints, and what pickle looks up (multiprocessing workers re-raise
    # through it): the name a user imports.
    assert (cls.__module__, cls.__name__) == ("dcp", name)
    assert getattr(dcp, name) is cls
    e = pickle.loads(pickle.dumps(cls("boom")))
    assert type(e) is cls and e.args == ("boom",)


def test_bad_timeouts_are_refused_before_any_gpu_is_touched():
    for kw in ({"timeout_s": -1.0}, {"timeout_s": float("nan")}, {"blocking_timeout_s": 0.0}):
        with pytest.raises(dcp.InvalidSpecError, match="must be a positive number of seconds"):
            _native.CudaExecutor(0, 0, 1, **kw)


def test_the_planner_wrapper_takes_the_extensions_keywords_and_defaults():
    wrapper = runtime_params(dcp.Planner)
    native = runtime_params(_native.Planner)
    assert wrapper == native
