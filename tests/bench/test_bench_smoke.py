"""The chunking benchmark runs on a tiny generated corpus and reports every field."""

from __future__ import annotations

from pathlib import Path

from bench import chunking, results
from bench.corpora import Corpus


def test_chunking_bench_smoke(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    for i in range(3):
        body = "\n\n".join(
            f"def f{i}_{j}(x):\n    '''Doc.'''\n    return x + {j}\n" for j in range(20)
        )
        (repo / "pkg" / f"m{i}.py").write_text(
            f"import os\n\n\nclass C{i}:\n    def m(self):\n        return 1\n\n\n{body}"
        )
    (repo / "README.md").write_text("# Title\n\nSome text.\n")
    result = chunking.run(Corpus("tiny", repo), workers=1)
    summary = result["summary"]
    for key in (
        "chunk_mb_per_s_per_core",
        "parse_mb_per_s_per_core",
        "chunk_over_parse_throughput",
        "chunks_per_s_overall",
        "max_chunk_tokens",
        "model_max_tokens",
        "covered_share",
    ):
        assert key in summary, key
    assert summary["max_chunk_tokens"] <= summary["model_max_tokens"]
    assert summary["covered_share"] == 1.0
    assert result["scan"]["files"] == 4
    report = {
        "bench": "chunking",
        "corpus": "tiny",
        "machine_line": "test",
        "date": "now",
        "command": "test",
        "sections": {"chunking": result},
    }
    json_path, md_path = results.write(report, tmp_path / "out", "chunking_tiny")
    assert "max_chunk_tokens" in md_path.read_text() and json_path.exists()
