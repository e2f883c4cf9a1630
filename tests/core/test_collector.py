"""The cyclic collector's pauses and the frozen heap of a process that forks workers."""

from __future__ import annotations

import gc

import pytest

from indexer_core.collector import collector_paused
from tests.fresh_interpreter import python_output


def test_the_collector_pauses_inside_the_block_only_and_resumes_after_an_error() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():  # nested: still paused, and not resumed by the inner block
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("inside")
    assert gc.isenabled()


def test_a_paused_collector_stays_paused_for_whoever_paused_it() -> None:
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # not this block's to resume
    finally:
        gc.enable()


def test_importing_lancedb_runs_no_collection_and_leaves_the_collector_on() -> None:
    """A fresh interpreter, so the import is a real one: no full pass runs during it (the
    callbacks see none; without the pause, its growing heap sets one off), and the
    collector runs afterwards."""
    script = (
        "import gc\n"
        "passes = []\n"
        "def full_pass(phase, info):\n"
        "    if phase == 'start' and info['generation'] == 2:\n"
        "        passes.append(info)\n"
        "gc.callbacks.append(full_pass)\n"
        "from indexer_core.storage.lancedb_import import import_lancedb\n"
        "before = len(passes)\n"
        "import_lancedb()\n"
        "print('during', len(passes) - before, 'enabled', gc.isenabled())\n"
        "gc.collect()\n"
        "print('after', len(passes) - before)\n"
    )
    out = python_output(script).splitlines()
    assert out[-2:] == ["during 0 enabled True", "after 1"], out
