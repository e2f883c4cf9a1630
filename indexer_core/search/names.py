"""Finding chunks by identifier: `parse_header`, `HttpClient.send`, `feed parser`.

Embeddings blur identifiers and BM25 weighs a name like any other word of a chunk, so an
identifier query gets its own ranking of chunk names: exact names (and `Scope.name`) first,
then names sharing most of the query's word parts. Hybrid search fuses it with the others.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

# A trailing `?` or `!` is part of a Ruby (Crystal, Elixir) method's name: `valid?`, `save!`.
_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*(?:(?:\.|::|->|#)[A-Za-z_$][A-Za-z0-9_$]*)*[?!]?")
_SUFFIX = "?!"
_BARE = 0.9  # `valid` for the query `valid?` (or a sentence's `... load_config?`)
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_SEPARATORS = re.compile(r"\.|::|->|#")
_SCOPE_IDENT = re.compile(
    r"(?:class|def|fn|func|function|interface|struct|impl|module|trait)\s+"
    r"([A-Za-z_$][A-Za-z0-9_$]*)|^([A-Za-z_$][A-Za-z0-9_$]*)$"
)


def word_parts(identifier: str) -> list[str]:
    """Lower-case word parts of an identifier: `HTTPClient.send_all` -> http, client, send, all."""
    return [
        p.lower() for piece in re.split(r"[^A-Za-z0-9]+", identifier) for p in _CAMEL.findall(piece)
    ]


_WORD_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_CAMEL_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+\d*|[A-Z]+\d*|\d+")  # digits stay on


# The words `_WORD_TOKEN` finds that `_CAMEL_WORD` cuts in two or more parts, and only those:
# a word starts at the first letter of a run of letters and digits and takes the rest of it,
# and it has parts where a lower-case letter or digit meets a capital (`isX`, `v2Beta`), a
# capital run meets a capitalised word (`HTTPServer`), or digits meet a letter (`utf8decode`).
# Matching these alone (most words of a text have no parts) keeps the per-word Python call
# off the chunking of every file: it was a quarter of a chunk step's CPU.
_SPLIT_WORD = re.compile(
    r"(?<![A-Za-z0-9])(?P<digits>[0-9]*)"
    r"(?P<word>(?=[A-Za-z])[A-Za-z0-9]*?(?:[a-z0-9][A-Z]|[A-Z][A-Z][a-z]|[0-9][A-Za-z])"
    r"[A-Za-z0-9]*)"
)


def _expand_word(match: re.Match) -> str:
    word = match.group("word")
    return f"{match.group('digits')}{word} {' '.join(_CAMEL_WORD.findall(word))}"


def expand_identifiers(text: str) -> str:
    """`text` with every camelCase word followed by its parts: `isUnspecified is Unspecified`.

    The full-text tokenizer splits at `_`, `.` and other punctuation but keeps a camelCase
    word whole; spelling out its parts beside it lets BM25 match `unspecified` in a sentence
    as well as the whole identifier in a code query.
    """
    return _SPLIT_WORD.sub(_expand_word, text)


def search_text(path: str, scope: str, name: str, content: str) -> str:
    """What the full-text index holds for a chunk: where it is, what it is called, its text,
    with camelCase identifiers split into words (`expand_identifiers`)."""
    return expand_identifiers(f"{path}\n{scope}\n{name}\n{content}")


def chunk_names(name: str) -> list[str]:
    """The identifiers a chunk's `name` holds: `read` -> read; `a, b` -> a, b."""
    names = (name or "").split(",")
    return [n.strip() for n in names if n.strip() and _IDENT.fullmatch(n.strip())]


def scope_names(scope: str) -> list[str]:
    """Enclosing identifiers from a scope such as `HTTPResponse > def read(self):`."""
    out = []
    for element in (scope or "").split(" > "):
        match = _SCOPE_IDENT.search(element.strip())
        if match:
            out.append(match.group(1) or match.group(2))
    return out


def looks_like_code(token: str) -> bool:
    return bool(
        "_" in token
        or any(s in token for s in (".", "::", "->", "#"))
        or re.search(r"[a-z][A-Z]", token)
        or re.search(r"[A-Z]{2,}[a-z]", token)
    )


def query_identifiers(query: str) -> list[str]:
    """Identifiers worth a name lookup: code-like tokens, or the whole of a short query."""
    tokens = _IDENT.findall(query)
    code = [t for t in tokens if looks_like_code(t)]
    if code:
        return code
    words = query.split()
    if 0 < len(words) <= 3 and tokens:
        return ["_".join(tokens)] if len(tokens) > 1 else tokens
    return []


@lru_cache(maxsize=1 << 16)
def _name_fields(name: str) -> tuple[frozenset[str], frozenset[str]]:
    """A chunk name's lookup keys (each identifier and its last element, lower-case:
    `Client.send` -> client.send, send; `valid?` also as valid) and its identifiers' word
    parts."""
    names = chunk_names(name)
    keys: set[str] = set()
    parts: set[str] = set()
    for ident in names:
        last = _SEPARATORS.split(ident)[-1].lower()
        keys.update((ident.lower(), last, last.rstrip(_SUFFIX)))
        parts.update(word_parts(ident))
    return frozenset(keys), frozenset(parts)


@lru_cache(maxsize=1 << 16)
def _scope_fields(scope: str) -> tuple[tuple[str, ...], frozenset[str]]:
    """The lower-case enclosing identifiers of a scope and their word parts."""
    scopes = scope_names(scope)
    return tuple(s.lower() for s in scopes), frozenset(p for s in scopes for p in word_parts(s))


@dataclass
class SlotChange:
    """How one `NameIndex.updated` moved from the previous index: slots emptied (with the
    rows they held) and the slots of the rows added (always at the end)."""

    dropped: dict[int, dict]
    added: range


@dataclass
class NameIndex:
    """Chunk names of one table version, held in memory (a few MB per 100k chunks).

    Each row has a slot, its position in `rows`. An update empties the slots of the rows it
    drops (`None`) and appends the rows it adds, so the slots of other rows stay valid; a
    full load numbers the rows afresh. Rankings never depend on slot numbers: ties are
    ordered by chunk id, so an updated index ranks exactly like a freshly built one.
    """

    rows: list[dict | None]
    by_name: dict[str, list[int]] = field(default_factory=dict)
    by_part: dict[str, list[int]] = field(default_factory=dict)
    parts: list[frozenset[str]] = field(default_factory=list)
    live: int = 0  # rows that are not None

    @classmethod
    def build(cls, rows: list[dict]) -> NameIndex:
        return cls(rows=[]).updated((), rows)[0]

    def updated(
        self, dropped: Iterable[int], added: Iterable[dict]
    ) -> tuple[NameIndex, SlotChange]:
        """A new index with the rows at slots `dropped` removed and `added` appended.

        This index is left as it was (a query may still be reading it): lists that change
        are copied, the others shared. Added rows get their name fields (`_keys`, `_parts`,
        `_scopes`, `_scope_parts`) set in place.
        """
        rows, parts = list(self.rows), list(self.parts)
        by_name, by_part = dict(self.by_name), dict(self.by_part)
        change = SlotChange({}, range(len(rows), len(rows)))
        name_gone: dict[str, set[int]] = defaultdict(set)
        part_gone: dict[str, set[int]] = defaultdict(set)
        for i in dropped:
            row = rows[i]
            if row is None:
                continue
            change.dropped[i] = row
            rows[i], parts[i] = None, frozenset()
            for key in row["_keys"]:
                name_gone[key].add(i)
            for part in row["_parts"]:
                part_gone[part].add(i)
        for postings, gone in ((by_name, name_gone), (by_part, part_gone)):
            for key, slots in gone.items():
                left = [i for i in postings[key] if i not in slots]
                if left:
                    postings[key] = left
                else:
                    del postings[key]
        copied: tuple[set[str], set[str]] = (set(), set())
        start = len(rows)
        for row in added:
            i = len(rows)
            rows.append(row)
            row["_keys"], row["_parts"] = _name_fields(row.get("name") or "")
            row["_scopes"], row["_scope_parts"] = _scope_fields(row.get("scope") or "")
            parts.append(row["_parts"])
            for postings, keys, fresh in (
                (by_name, row["_keys"], copied[0]),
                (by_part, row["_parts"], copied[1]),
            ):
                for key in keys:
                    if key not in fresh:  # a list of the previous index is copied before it grows
                        fresh.add(key)
                        postings[key] = list(postings.get(key, ()))
                    postings[key].append(i)
        change.added = range(start, len(rows))
        live = self.live - len(change.dropped) + len(change.added)
        return NameIndex(rows, by_name, by_part, parts, live), change

    def rank(self, query: str, accept=None, limit: int = 50) -> list[tuple[int, float]]:
        """Slots whose names match the query's identifiers, best first, with a 0-1 score."""
        scores: dict[int, float] = {}
        for ident in query_identifiers(query):
            pieces = [p for p in _SEPARATORS.split(ident) if p]
            last, scope = pieces[-1].lower(), [p.lower() for p in pieces[:-1]]
            bare = last.rstrip(_SUFFIX)
            for key, weight in ((last, 1.0), (bare, _BARE)) if bare != last else ((last, 1.0),):
                for i in self.by_name.get(key, ()):
                    row = self.rows[i]
                    exact = 1.0 if not scope or scope[-1] in row["_scopes"] else 0.7
                    scores[i] = max(scores.get(i, 0.0), exact * weight)
            for i in self.by_name.get(ident.lower(), ()):
                scores[i] = 1.0
            if scope:  # `Class.member` where the member is not a chunk of its own
                for i in self.by_name.get(scope[-1], ()):
                    scores[i] = max(scores.get(i, 0.0), 0.8)
            wanted = set(word_parts(ident))
            if not wanted:
                continue
            posting_sets = [self.by_part.get(p, ()) for p in wanted]
            candidates = set().union(*posting_sets) if posting_sets else set()
            for i in candidates:
                have = self.parts[i] | self.rows[i]["_scope_parts"]
                overlap = len(wanted & have)
                if overlap * 2 < len(wanted) or not (wanted & self.parts[i]):
                    continue
                score = 0.6 * overlap / len(wanted | self.parts[i])
                if score > scores.get(i, 0.0):
                    scores[i] = score
        ranked = [(i, s) for i, s in scores.items() if accept is None or accept(self.rows[i])]
        rows = self.rows
        ranked.sort(
            key=lambda item: (
                -item[1],
                rows[item[0]]["path"],
                rows[item[0]]["start_line"],
                rows[item[0]]["chunk_id"],
            )
        )
        return ranked[:limit]
