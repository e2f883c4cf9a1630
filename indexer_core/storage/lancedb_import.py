"""Import `lancedb` without the import cost of a REST client that local tables never use.

lancedb imports `lance_namespace`, whose generated REST client package
(`lance_namespace_urllib3_client`) imports every API class in its `__init__`, each method
wrapped in pydantic's `validate_call`: about 1.5-2 s of CPU per process on these machines
(`python -X importtime -c "import lancedb"`), paid by every chunk step, CLI call and
search. Here that package is registered without running its `__init__`: its submodules
(the models `lance_namespace` needs) import as usual, and the package body runs on the
first use of one of its own names, so a REST namespace still works.

Two more costs of defining lancedb's own classes are put off while it imports, about 0.4 s
of the ~1 s left (medians of 8 imports each):
- On Python 3.11 lancedb checks its overrides at class creation with the `overrides`
  package, which disassembles the defining frame's bytecode for every decorated method; on
  3.12 it uses `typing.override`, which only marks the method. It gets the 3.12 behaviour
  (`overrides_as_on_312`).
- Its pydantic models (REST namespace requests and responses, remote functions, embedding
  configs: about 200, none of which a local table uses) build their validators the first
  time they are used instead (`deferred_models`).
Both are undone once lancedb is imported: nothing defined later is affected. The cyclic
collector also waits until the import is done (`collector_paused`).
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import TypeVar

from indexer_core.collector import collector_paused
from indexer_core.deferred_models import deferred_model_builds

REST_CLIENT_PACKAGE = "lance_namespace_urllib3_client"


def defer_rest_client() -> None:
    """Register the REST client package so that its body runs only on first use."""
    if REST_CLIENT_PACKAGE in sys.modules:
        return
    spec = importlib.util.find_spec(REST_CLIENT_PACKAGE)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return
    module = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def load_on_first_use(name: str) -> object:
        module.__dict__.pop("__getattr__", None)
        loader.exec_module(module)
        return getattr(module, name)

    module.__getattr__ = load_on_first_use  # type: ignore[method-assign]
    sys.modules[REST_CLIENT_PACKAGE] = module


F = TypeVar("F", bound=Callable)


def marked_override(method: F) -> F:
    """What `typing.override` (Python 3.12) does: mark the method, check nothing."""
    try:
        method.__override__ = True  # type: ignore[attr-defined]
    except (AttributeError, TypeError):
        pass
    return method


class PlainBase:
    """What lancedb's `EnforceOverrides` is on Python 3.12: a base class with no checks."""


@contextmanager
def overrides_as_on_312() -> Iterator[None]:
    """Inside this block, the `overrides` package's `override` and `EnforceOverrides` are
    what lancedb uses on Python 3.12 (`marked_override`, `PlainBase`); put back afterwards,
    whatever happens. On 3.12 and later, or without the package, it changes nothing."""
    overrides = _overrides_package()
    if overrides is None:
        yield
        return
    saved = overrides.override, overrides.EnforceOverrides
    overrides.override, overrides.EnforceOverrides = marked_override, PlainBase
    try:
        yield
    finally:
        overrides.override, overrides.EnforceOverrides = saved


def _overrides_package() -> ModuleType | None:
    """The `overrides` package where lancedb would use it (Python before 3.12), else None."""
    if sys.version_info >= (3, 12):
        return None
    try:
        import overrides
    except ImportError:
        return None
    known = hasattr(overrides, "override") and hasattr(overrides, "EnforceOverrides")
    return overrides if known else None


_importing = threading.Lock()
_imported: ModuleType | None = None


def import_lancedb() -> ModuleType:
    """The lancedb module, with the REST client deferred first and its own classes defined
    the light way (see the module docstring) when this process imports it first.

    Threads that ask while another imports it wait for the whole module: lancedb is in
    `sys.modules` from the start of its import, half defined (a step importing it on two
    threads at once once got one without `connect`), and the patches above are the
    process's own, so only one thread may hold them."""
    global _imported
    if _imported is not None:
        return _imported
    with _importing:
        if _imported is None:
            if "lancedb" not in sys.modules:
                defer_rest_client()
                with collector_paused(), overrides_as_on_312(), deferred_model_builds():
                    import lancedb
            else:
                import lancedb  # imported elsewhere: waits for it to be whole
            _imported = lancedb
    return _imported
