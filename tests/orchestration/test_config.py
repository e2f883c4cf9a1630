"""One configuration module: every setting read once, documented, and never by the core."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestration import config

PROJECT = Path(__file__).resolve().parents[2]


def test_the_core_reads_no_setting_from_the_environment() -> None:
    offenders = [
        f"{path.relative_to(PROJECT)}:{n}"
        for path in sorted((PROJECT / "indexer_core").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "CODE_INDEX_" in line
    ]
    assert offenders == []


def test_every_variable_is_read_in_the_config_module_only() -> None:
    outside = [
        f"{path.relative_to(PROJECT)}:{n}"
        for path in sorted((PROJECT / "orchestration").rglob("*.py"))
        if path.name != "config.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"environ(\.get)?\s*[\[(]\s*[\"']CODE_INDEX_", line)
    ]
    assert outside == []


def test_the_readme_lists_every_setting() -> None:
    readme = (PROJECT / "README.md").read_text()
    assert config.markdown_table() in readme


def test_values_are_parsed_and_a_bad_one_names_its_variable() -> None:
    loaded = config.load(
        {"CODE_INDEX_SHARDS": "3", "CODE_INDEX_SENSORS": "off", "CODE_INDEX_HOME": "/tmp/x"}
    )
    assert loaded.shards == 3 and loaded.sensors is False
    assert loaded.lancedb_uri == "/tmp/x/lancedb"
    assert config.load({}).shards == 32 and config.load({}).sensors is True
    assert config.load({"CODE_INDEX_REPOS": "a=/src/a; b=/src/b"}).repositories() == {
        "a": "/src/a",
        "b": "/src/b",
    }
    with pytest.raises(ValueError, match="CODE_INDEX_SHARDS"):
        config.load({"CODE_INDEX_SHARDS": "many"})


def test_reading_the_settings_and_starting_the_step_server_import_no_engine() -> None:
    """The CLI reads the settings and starts the step server before it imports LanceDB or
    Dagster, so the server loads the code location while the CLI loads its own share."""
    from tests.orchestration.helpers import python_output

    script = (
        "import sys, orchestration.config, orchestration.launch\n"
        "orchestration.config.load().index_settings()\n"
        "heavy = ('lancedb', 'pyarrow', 'numpy', 'dagster', 'tree_sitter', 'sqlalchemy')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    assert python_output(script).strip().splitlines()[-1] == "[]"


def test_a_first_index_starts_the_step_server_before_lancedb_or_dagster_load(tmp_path) -> None:
    """`code-index index` on an index that has no registry yet (or with `--force`) knows the
    run covers the whole tree, so it starts the step server before its own heavy imports,
    asking to fork it from itself once it has imported what both need (`forked_server`)."""
    from tests.orchestration.helpers import python_output

    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.py").write_text("def f():\n    return 1\n" * 50)
    script = (
        "import sys, orchestration.cli as cli, orchestration.launch as launch\n"
        "heavy = ('lancedb', 'dagster', 'sqlalchemy')\n"
        "def prewarm(**how):\n"  # its output goes to the steps' log meanwhile: kept for the end
        "    seen.append((sorted(m for m in heavy if m in sys.modules), how))\n"
        "    return False\n"
        "seen = []\n"
        "launch.prewarm_step_server = prewarm\n"
        "cli._run_index = lambda *args: print('run') or 0\n"
        "sys.argv = ['code-index', 'index', sys.argv[1], '--db', sys.argv[2]]\n"
        "code = cli.main()\n"
        "print('loaded when the server starts:', *seen)\n"
        "sys.exit(code)\n"
    )
    env = {"CODE_INDEX_HOME": str(tmp_path / "home"), "CODE_INDEX_IN_PROCESS_BYTES": "1"}
    out = python_output(script, str(tree), str(tmp_path / "db"), env=env)
    assert out.splitlines()[-2:] == [
        "run",
        "loaded when the server starts: ([], {'fork_from_here': True})",
    ]


def test_call_warm_runs_in_a_process_forked_from_the_step_server_or_here(tmp_path) -> None:
    """What the CLI reads after a run (the summary) runs in a child of the step server, which
    has LanceDB imported; without a server, or if that child dies, it runs in the caller."""
    from tests.orchestration.helpers import python_output

    script = (
        "import os, orchestration.launch as launch\n"
        "from tests.orchestration.helpers import lancedb_loaded, pid_unless_in_a_worker\n"
        "print('cold', launch.call_warm(os.getpid) == os.getpid())\n"
        "assert launch.prewarm_step_server()\n"
        "print('warm', launch.call_warm(os.getpid) != os.getpid())\n"
        "print('has lancedb', launch.call_warm(lancedb_loaded))\n"
        "print('fallback', launch.call_warm(pid_unless_in_a_worker) == os.getpid())\n"
        "print('here', lancedb_loaded())\n"
    )
    out = python_output(script, env={"CODE_INDEX_HOME": str(tmp_path / "home")})
    assert out.splitlines()[-5:] == [
        "cold True",
        "warm True",
        "has lancedb True",
        "fallback True",
        "here False",
    ], out


def test_an_index_is_new_until_a_repository_is_registered(tmp_path) -> None:
    from indexer_core.storage import registry
    from orchestration.launch import REGISTRY_TABLE_DIR, index_is_new

    db = str(tmp_path / "db")
    assert index_is_new(db) and index_is_new(f"file://{db}")
    registry.register(db, "repo", tmp_path)
    assert not index_is_new(db) and not index_is_new(f"file://{db}")
    assert REGISTRY_TABLE_DIR == f"{registry.REPOSITORIES}.lance"
    assert not index_is_new("s3://bucket/index")  # only LanceDB can tell there
