"""Models defined inside `deferred_model_builds` build on first use; nothing else changes."""

import pydantic
import pytest

from indexer_core.deferred_models import deferred_model_builds


def test_models_defined_inside_build_on_first_use_and_later_ones_at_once() -> None:
    with deferred_model_builds():

        class Inside(pydantic.BaseModel):
            count: int

        class Eager(pydantic.BaseModel):
            model_config = pydantic.ConfigDict(defer_build=False)
            name: str

    assert not Inside.__pydantic_complete__
    assert Eager.__pydantic_complete__
    assert "defer_build" not in pydantic.BaseModel.model_config

    class Later(Inside):  # a subclass of a deferred model, defined afterwards
        label: str

    assert Later.__pydantic_complete__

    assert Inside(count="3").count == 3  # validated as usual, built now
    assert Inside.__pydantic_complete__
    with pytest.raises(pydantic.ValidationError):
        Inside(count="three")
    assert Later(count=1, label="x").model_dump() == {"count": 1, "label": "x"}


def test_the_base_config_is_put_back_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError), deferred_model_builds():
        raise RuntimeError("an import failed")
    assert "defer_build" not in pydantic.BaseModel.model_config

    class After(pydantic.BaseModel):
        x: int

    assert After.__pydantic_complete__
