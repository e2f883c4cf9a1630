"""Run a script in a fresh interpreter: what a step process, the CLI or a search imports,
without anything the test process has loaded. No Dagster import here, so core tests use it
too."""

from __future__ import annotations

import os
import subprocess
import sys


def python_output(script: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Run `script` in a fresh interpreter (what a step process or the CLI would import,
    and nothing this test process has loaded); asserts it succeeded, returns its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout
