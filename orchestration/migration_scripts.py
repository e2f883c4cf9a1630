"""Dagster's migration scripts, read once per process instead of once per storage opened.

Opening a SQLite instance storage asks alembic for the newest migration
(`dagster._core.storage.sql.check_alembic_revision`), and creating one stamps it; each time,
alembic builds a new `ScriptDirectory` and loads every revision script again to answer. That
is about 0.1 s of CPU per storage, four storages per step process (runs, the event log's
index and run shards, schedules), paid again by every step and by the CLI before its run
starts: on the critical path at both ends of a run.

The scripts on disk do not change while a process runs, and all of Dagster's SQLite
storages share one script directory. Here `ScriptDirectory.from_config` returns one
directory, with its revision map, per set of options; the step server builds it before it
forks a step (`step_preload`), so steps inherit it built.
"""

from __future__ import annotations

import threading

_installed = False


def install() -> bool:
    """Cache `ScriptDirectory.from_config` in this process (and those forked from it).
    Idempotent; False, changing nothing, where alembic's class no longer has that method."""
    global _installed
    if _installed:
        return True
    from alembic.script import ScriptDirectory

    build = getattr(ScriptDirectory.from_config, "__func__", None)
    if build is None:
        return False
    built: dict[tuple, ScriptDirectory] = {}
    lock = threading.Lock()

    def from_config(cls, config):
        """The directory `config` names, built on first use of these options."""
        # `here` is the ini file's own directory (each storage has its own file); an option
        # that uses it appears below with the value it resolves to.
        options = config.get_section(config.config_ini_section, {})
        options = sorted((k, v) for k, v in options.items() if k != "here")
        key = (cls, tuple(options), tuple(sorted(config.messaging_opts.items())))
        with lock:
            script = built.get(key)
            if script is None:
                script = built[key] = build(cls, config)
        return script

    ScriptDirectory.from_config = classmethod(from_config)
    _installed = True
    return True
