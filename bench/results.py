"""Writing a result as JSON plus a Markdown report that names the machine and the corpus."""

from __future__ import annotations

import json
import time
from pathlib import Path


def _scalar(value: object) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _table(data: dict[str, object]) -> list[str]:
    rows = [(k, v) for k, v in data.items() if _scalar(v)]
    if not rows:
        return []
    return ["| measure | value |", "| --- | --- |", *[f"| {k} | {v} |" for k, v in rows], ""]


def rows_table(columns: dict[str, str], rows: list[dict]) -> list[str]:
    """A Markdown table of `rows`, one column per key of `columns` (key -> heading)."""
    lines = [
        "| " + " | ".join(columns.values()) + " |",
        "| " + " | ".join("---" for _ in columns) + " |",
    ]
    lines += ["| " + " | ".join(str(r[k]) for k in columns) + " |" for r in rows]
    return lines


def markdown(result: dict[str, object]) -> str:
    lines = [
        f"# bench `{result['bench']}` on `{result['corpus']}`",
        "",
        f"- machine: {result['machine_line']}",
        f"- corpus: {result['corpus']} ({result.get('corpus_root', '')})",
        (
            f"- date: {result['date']}; command: `{result['command']}`; "
            f"total {result.get('seconds', '?')} s"
        ),
        "",
    ]
    for section, data in result["sections"].items():
        lines += [f"## {section}", ""]
        if not isinstance(data, dict):
            lines += [f"{data}", ""]
            continue
        if isinstance(data.get("summary"), dict):
            lines += ["Key figures:", "", *_table(data["summary"])]
        lines += _table(data)
        for key, sub in data.items():
            if key == "summary" or not isinstance(sub, dict):
                continue
            if key == "memory":
                lines += _memory(sub)
            elif any(_scalar(v) for v in sub.values()):
                lines += [f"### {key}", "", *_table(sub)]
        if data.get("timeline_png"):
            lines += [f"![timeline]({Path(str(data['timeline_png'])).name})", ""]
    return "\n".join(lines) + "\n"


def _memory(mem: dict[str, object]) -> list[str]:
    out = [
        "### peak memory (RSS) of every process",
        "",
        *_table(mem),
        "| pid | process | peak RSS MB | seen (s) |",
        "| --- | --- | --- | --- |",
    ]
    for p in mem.get("per_process", []):  # type: ignore[union-attr]
        out.append(f"| {p['pid']} | {p['label']} | {p['peak_rss_mb']} | {p['seen_s']} |")
    return out + [""]


def write(result: dict[str, object], out_dir: Path, stem: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{stem}.json"
    md_path = out_dir / f"{stem}.md"
    json_path.write_text(json.dumps(result, indent=2, default=str))
    md_path.write_text(markdown(result))
    return json_path, md_path


def stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z")
