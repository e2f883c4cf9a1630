"""A hostile corpus: every file ends up indexed or skipped with its reason, and nothing crashes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from indexer_core.chunking import files as chunk_files
from indexer_core.discovery import skip_reasons
from indexer_core.indexing import chunk_step as indexing
from indexer_core.indexing.chunk_step import chunk_partition
from indexer_core.indexing.embed_step import embed_partition
from indexer_core.indexing.settings import IndexSettings
from indexer_core.storage import registry
from orchestration import cli
from tests.reliability.conftest import PROJECT, child_env
from tests.reliability.corpus import INDEXED, LIMIT, build_corpus
from tests.reliability.fakes import HashEmbedder
from tests.reliability.tables import assert_clean, chunk_set, manifest

SHARDS = 3
SETTINGS = IndexSettings(shards=SHARDS, max_file_bytes=LIMIT, use_git=False)


def _index_all(db_uri: str, root: Path) -> list[indexing.ChunkReport]:
    reports = [chunk_partition(db_uri, "hostile", str(root), s, SETTINGS) for s in range(SHARDS)]
    for shard in range(SHARDS):
        embed_partition(db_uri, "hostile", shard, HashEmbedder())
    return reports


def _outcomes(reports: list[indexing.ChunkReport], db_uri: str) -> dict[str, str]:
    """path -> "indexed" or reason, from the reports' skip lists and the manifest's indexed rows."""
    out = {s.path: s.reason for r in reports for s in r.skipped}
    out.update({p: INDEXED for p, (status, _) in manifest(db_uri).items() if status == INDEXED})
    return out


def _status_json(db_uri: str, capsys: pytest.CaptureFixture) -> dict:
    capsys.readouterr()
    assert cli.main(["--db", db_uri, "status", "--json"]) == 0
    return json.loads(capsys.readouterr().out)["repositories"]["hostile"]


def _racing_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Between scan and parse: one file is deleted, another replaced by a directory."""
    real = chunk_files.read_file_bytes

    def racing(root, rel):
        full = Path(root) / rel
        if rel == "race/vanishes.py":
            full.unlink()
        elif rel == "race/becomes_dir.py":
            full.unlink()
            full.mkdir()
        return real(root, rel)

    monkeypatch.setattr(chunk_files, "read_file_bytes", racing)


@pytest.mark.slow
def test_every_hostile_file_is_indexed_or_skipped_with_reason(
    tmp_path, monkeypatch, capsys
) -> None:
    root, db_uri = tmp_path / "repo", str(tmp_path / "db")
    expected = build_corpus(root, tmp_path / "outside", big=True)
    _racing_reads(monkeypatch)
    reports = _index_all(db_uri, root)

    assert _outcomes(reports, db_uri) == expected
    assert_clean(db_uri)
    chunks = chunk_set(db_uri)
    assert not any("OUTSIDE_SECRET_MARKER" in c[4] for c in chunks), (
        "a symlink outside was followed"
    )
    paths = {c[1] for c in chunks}
    assert {
        "names/new\nline.py",
        "names/'; DROP TABLE chunks; --.py",
        "big/one_function.py",
        "deep/nested.py",
        "enc/utf16.py",
        "eol/lone_cr.py",
        "syntax/broken.kt",
    } <= paths
    assert not any("\r" in c[4] for c in chunks if c[1].startswith("eol/"))

    # The same verdicts in `code-index status --json`; a vanished file is simply gone.
    registry.register(db_uri, "hostile", str(root))
    status = _status_json(db_uri, capsys)
    listed = {s["path"]: s["reason"] for s in status["skipped_files"]}
    skips = {p: r for p, r in expected.items() if r not in (INDEXED, skip_reasons.VANISHED)}
    assert listed == skips
    assert status["files"] == sum(1 for r in expected.values() if r == INDEXED)
    assert status["chunks"] == status["vectors"] == len(chunks)

    # Between runs a file becomes a directory of files: its rows go, the new file comes in.
    (root / "race/swap.py").unlink()
    (root / "race/swap.py").mkdir()
    (root / "race/swap.py/inner.py").write_text("def inner():\n    return 'inside'\n")
    shutil.rmtree(root / "race/becomes_dir.py")
    monkeypatch.undo()
    again = _index_all(db_uri, root)
    outcomes = _outcomes(again, db_uri)
    assert outcomes["race/swap.py/inner.py"] == INDEXED and "race/swap.py" not in outcomes
    assert "race/becomes_dir.py" not in outcomes and "race/vanishes.py" not in outcomes
    assert not any(c[1] == "race/swap.py" for c in chunk_set(db_uri))
    assert sum(r.parsed for r in again) == 1  # only the new file: the rest came from the manifest
    assert_clean(db_uri)


@pytest.mark.skipif(
    not hasattr(os, "setuid") or os.geteuid() != 0, reason="needs root to drop to nobody"
)
def test_unreadable_file_is_listed_and_run_continues(tmp_path) -> None:
    """As `nobody`, a chmod 000 file is skipped as unreadable; its neighbours are indexed."""
    base = Path(tempfile.mkdtemp(prefix="reliability-unreadable-"))
    try:
        root = base / "repo"
        root.mkdir(parents=True)
        (root / "open.py").write_text("def fine():\n    return 1\n")
        (root / "locked.py").write_text("def secret():\n    return 2\n")
        os.chmod(root / "locked.py", 0)
        (base / "db").mkdir()
        for path in (base, root):
            os.chmod(path, 0o755)
        os.chmod(base / "db", 0o777)
        code = (
            "import os, json\n"
            "from indexer_core.indexing.settings import IndexSettings\n"
            "from indexer_core.indexing.chunk_step import chunk_partition\n"
            "from indexer_core.indexing.embed_step import embed_partition\n"
            "from indexer_core.storage import registry\n"
            "from orchestration.status import status_report\n"
            "from tests.reliability.fakes import HashEmbedder\n"
            "import tempfile\n"
            "warm = tempfile.mkdtemp()  # one full pass as root first: every lazy import and "
            "library loads\n"
            "open(os.path.join(warm, 'w.py'), 'w').write('def w():\\n    return 1\\n')\n"
            "chunk_partition(warm + '/db', 'warm', warm, 0, IndexSettings(shards=1, "
            "use_git=False))\n"
            "embed_partition(warm + '/db', 'warm', 0, HashEmbedder())\n"
            "registry.register(warm + '/db', 'warm', warm); status_report(warm + '/db')\n"
            "os.setgid(65534); os.setuid(65534)\n"
            f"db, root = {str(base / 'db')!r}, {str(root)!r}\n"
            "r = chunk_partition(db, 'locked', root, 0, IndexSettings(shards=1, use_git=False))\n"
            "embed_partition(db, 'locked', 0, HashEmbedder())\n"
            "registry.register(db, 'locked', root)\n"
            "s = status_report(db)['repositories']['locked']\n"
            "print(json.dumps({'skipped': [(x.path, x.reason) for x in r.skipped],\n"
            "                  'files': r.files,\n"
            "                  'status': [(x['path'], x['reason']) for x in "
            "s['skipped_files']]}))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            check=False,
            capture_output=True,
            text=True,
            cwd=PROJECT,
            env={**child_env(), "HOME": str(base)},
            timeout=300,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result == {
            "skipped": [["locked.py", skip_reasons.UNREADABLE]],
            "files": 1,
            "status": [["locked.py", skip_reasons.UNREADABLE]],
        }
    finally:
        shutil.rmtree(base, ignore_errors=True)
