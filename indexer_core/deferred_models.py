"""Import libraries whose pydantic models this process may never use, without building them.

Dagster and lancedb each define hundreds of pydantic models on import (dagster's components
and config classes, lancedb's REST namespace requests and remote functions). Creating a model
builds its validator and serializer at once: a large share of these imports' CPU, paid by
every process that starts a run or a search, for models a run mostly never validates.
Pydantic's own `defer_build` puts each build off until the model's first use (validation,
schema, serialization), which it then does as before.

`deferred_model_builds` applies it to the models defined inside it only: the models it
deferred are set back to building at once, so a model defined later, their subclasses
included, is built when it is defined, as usual.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def deferred_model_builds() -> Iterator[None]:
    """Models defined inside this block build their validators on first use; nothing else
    changes. Without pydantic, or where its names moved, it does nothing."""
    try:
        from pydantic import BaseModel

        config = BaseModel.model_config
    except (ImportError, AttributeError):
        yield
        return
    before = _models(BaseModel)
    BaseModel.model_config = {**config, "defer_build": True}
    try:
        yield
    finally:
        BaseModel.model_config = config
        for model in _models(BaseModel) - before:
            own = model.__dict__.get("model_config")
            if isinstance(own, dict):
                own.pop("defer_build", None)  # deferred already; its subclasses build at once


def _models(base: type) -> set[type]:
    """Every subclass of `base`, at any depth."""
    found: set[type] = set()
    pending = [base]
    while pending:
        for sub in type.__subclasses__(pending.pop()):
            if sub not in found:
                found.add(sub)
                pending.append(sub)
    return found
