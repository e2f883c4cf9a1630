"""Import `lancedb` without the import cost of a REST client that local tables never use.

lancedb imports `lance_namespace`, whose generated REST client package
(`lance_namespace_urllib3_client`) imports every API class in its `__init__`, each method
wrapped in pydantic's `validate_call`: about 1.5-2 s of CPU per process on these machines
(`python -X importtime -c "import lancedb"`), paid by every chunk step, CLI call and
search. Here that package is registered without running its `__init__`: its submodules
(the models `lance_namespace` needs) import as usual, and the package body runs on the
first use of one of its own names, so a REST namespace still works.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

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


def import_lancedb() -> ModuleType:
    """The lancedb module, with the REST client deferred first."""
    defer_rest_client()
    import lancedb

    return lancedb
