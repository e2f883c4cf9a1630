"""The search evaluation's plain baselines on a real index: LanceDB's FTS alone and its
vector search alone, each over the chunks the project's modes search (real model)."""

from __future__ import annotations

from pathlib import Path

from bench.search_eval import adapter
from tests.conftest import write_tree

RETRY = '''
def retry_request(send, attempts):
    """Send an HTTP request again after a failure, waiting longer each time."""
    delay = 0.5
    for attempt in range(attempts):
        try:
            return send()
        except ConnectionError:
            sleep(delay)
            delay *= 2
    raise TimeoutError("gave up after retries with exponential backoff")


def backoff_delays(first, attempts):
    """The waits between retries: each twice the last."""
    return [first * 2**n for n in range(attempts)]
'''

COLOURS = '''
def parse_hex_colour(text):
    """Turn a #rrggbb string into red, green and blue integers."""
    text = text.lstrip("#")
    return tuple(int(text[i : i + 2], 16) for i in (0, 2, 4))
'''


def test_plain_baselines_rank_raw_chunks(tmp_path: Path, embedder) -> None:
    tree = write_tree(tmp_path / "tree", {"net/retry.py": RETRY, "ui/colours.py": COLOURS})
    db_uri = str(tmp_path / "db")
    indexed = adapter.index_tree(db_uri, "demo", str(tree), embedder)
    assert indexed["chunks"] == 3

    near = adapter.plain_vector(db_uri, "resend a failed network call with backoff", 10, embedder)
    # every chunk, nearest first, one file twice: no one-result-per-file ranking stage
    assert [path for path, _, _ in near] == ["net/retry.py", "net/retry.py", "ui/colours.py"]
    assert near[0][1:] == (2, 11)
    colour = adapter.plain_vector(db_uri, "convert a hex colour code to rgb", 1, embedder)
    assert colour == [("ui/colours.py", 2, 5)]

    words = adapter.plain_bm25(db_uri, "exponential backoff", 10)
    assert words[0] == ("net/retry.py", 2, 11)  # both words, where the other has one
    assert "ui/colours.py" not in {path for path, _, _ in words}
