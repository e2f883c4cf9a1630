"""Dagster's migration scripts are loaded once per process, whatever it opens."""

from __future__ import annotations

from tests.orchestration.helpers import python_output

COUNT_LOADS = (
    "import os, sys, tempfile\n"
    "import dagster as dg\n"
    "from alembic.script import ScriptDirectory\n"
    "loads = []\n"
    "original = ScriptDirectory._load_revisions\n"
    "def counted(self):\n"
    "    loads.append(self.dir)\n"
    "    return original(self)\n"
    "ScriptDirectory._load_revisions = counted\n"
    "from orchestration import migration_scripts\n"
    "if sys.argv[1] == 'installed':\n"
    "    assert migration_scripts.install() and migration_scripts.install()\n"
    "home = tempfile.mkdtemp()\n"
    "os.environ['DAGSTER_HOME'] = home\n"
    "open(os.path.join(home, 'dagster.yaml'), 'w').write('telemetry:\\n  enabled: false\\n')\n"
    "for _ in range(2):\n"  # created, then opened again as a step would
    "    with dg.DagsterInstance.get() as instance:\n"
    "        instance.get_runs(limit=1)\n"
    "        instance.get_records_for_run('no-such-run', limit=1)\n"
    "print('loads', len(loads), 'directories', len(set(loads)))\n"
)


def test_creating_and_reopening_an_instance_loads_the_scripts_once() -> None:
    """Creating a fresh SQLite instance and opening it again (every storage, and a run's own
    event-log shard) loads the migration scripts once when installed; Dagster alone loads
    them for each storage, each time."""
    assert python_output(COUNT_LOADS, "installed").splitlines()[-1] == "loads 1 directories 1"
    alone = python_output(COUNT_LOADS, "alone").splitlines()[-1].split()
    assert int(alone[1]) >= 6 and alone[2:] == ["directories", "1"], alone


def test_other_options_get_their_own_directory(tmp_path) -> None:
    script = (
        "from alembic.config import Config\n"
        "from alembic.script import ScriptDirectory\n"
        "from dagster._core.storage.runs.sqlite import sqlite_run_storage\n"
        "from dagster._core.storage.sql import get_alembic_config\n"
        "from orchestration import migration_scripts\n"
        "migration_scripts.install()\n"
        "dagster = get_alembic_config(sqlite_run_storage.__file__)\n"
        "other = Config()\n"
        "other.set_main_option('script_location', sys.argv[1])\n"
        "a, b = ScriptDirectory.from_config(dagster), ScriptDirectory.from_config(dagster)\n"
        "c = ScriptDirectory.from_config(other)\n"
        "print(a is b, c is not a, c.dir == sys.argv[1])\n"
    )
    (tmp_path / "versions").mkdir()
    out = python_output("import sys\n" + script, str(tmp_path))
    assert out.splitlines()[-1] == "True True True"
