"""What machine a result came from: CPU model, cores, memory, GPU, Python."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> float:
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return 0.0


def gpus() -> list[str]:
    """GPU names from nvidia-smi (no torch import: the chunking bench never loads torch)."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def describe() -> dict[str, object]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 1,
        "memory_gib": memory_gib(),
        "gpus": gpus(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def one_line(info: dict[str, object]) -> str:
    gpu = ", ".join(info["gpus"]) if info.get("gpus") else "no GPU"  # type: ignore[arg-type]
    return (
        f"{info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, {gpu}, "
        f"Python {info['python']}"
    )
