"""Fixtures of the reliability suite: a small ordinary repository and child-process settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process that imports this worktree's packages."""
    return {
        **os.environ,
        "PYTHONPATH": str(PROJECT),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        **extra,
    }


@pytest.fixture
def small_repo(tmp_path: Path) -> Path:
    """A few dozen ordinary files over several languages: enough chunks for kills to land
    mid-work."""
    root = tmp_path / "small"
    for i in range(40):
        path = root / f"pkg{i % 4}" / f"mod{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        funcs = "".join(
            f'def func_{i}_{j}(value):\n    """Doc {i} {j}."""\n'
            + "".join(f"    value = value * {k} + {j}\n" for k in range(12))
            + "    return value\n\n\n"
            for j in range(8)
        )
        path.write_text(f"import os\n\n\n{funcs}")
    for i in range(10):
        (root / "web").mkdir(exist_ok=True)
        (root / "web" / f"w{i}.js").write_text(
            "".join(f"export function f{i}_{j}(a) {{\n  return a + {j};\n}}\n\n" for j in range(20))
        )
    return root
