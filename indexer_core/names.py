"""Finding chunks by identifier: `parse_header`, `HttpClient.send`, `feed parser`.

Embeddings blur identifiers and BM25 weighs a name like any other word of a chunk, so an
identifier query gets its own ranking of chunk names: exact names (and `Scope.name`) first,
then names sharing most of the query's word parts. Hybrid search fuses it with the others.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*(?:(?:\.|::|->|#)[A-Za-z_$][A-Za-z0-9_$]*)*")
_PART_SUFFIX = re.compile(r"\s*\(part \d+/\d+\)$")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_SEPARATORS = re.compile(r"\.|::|->|#")
_SCOPE_IDENT = re.compile(r"(?:class|def|fn|func|function|interface|struct|impl|module|trait)\s+"
                          r"([A-Za-z_$][A-Za-z0-9_$]*)|^([A-Za-z_$][A-Za-z0-9_$]*)$")


def word_parts(identifier: str) -> list[str]:
    """Lower-case word parts of an identifier: `HTTPClient.send_all` -> http, client, send, all."""
    return [p.lower() for piece in re.split(r"[^A-Za-z0-9]+", identifier) for p in _CAMEL.findall(piece)]


_WORD_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_CAMEL_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+\d*|[A-Z]+\d*|\d+")  # digits stay on


def _expand_token(match: re.Match) -> str:
    token = match.group(0)
    parts = _CAMEL_WORD.findall(token)
    return token if len(parts) < 2 else f"{token} {' '.join(parts)}"


def expand_identifiers(text: str) -> str:
    """`text` with every camelCase word followed by its parts: `isUnspecified is Unspecified`.

    The full-text tokenizer splits at `_`, `.` and other punctuation but keeps a camelCase
    word whole; spelling out its parts beside it lets BM25 match `unspecified` in a sentence
    as well as the whole identifier in a code query.
    """
    return _WORD_TOKEN.sub(_expand_token, text)


def search_text(path: str, scope: str, name: str, content: str) -> str:
    """What the full-text index holds for a chunk: where it is, what it is called, its text,
    with camelCase identifiers split into words (`expand_identifiers`)."""
    return expand_identifiers(f"{path}\n{scope}\n{name}\n{content}")


def chunk_names(name: str) -> list[str]:
    """The identifiers a chunk's `name` holds: `read (part 1/2)` -> read; `a, b` -> a, b."""
    name = _PART_SUFFIX.sub("", name or "")
    return [n.strip() for n in name.split(",") if n.strip() and _IDENT.fullmatch(n.strip())]


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
        "_" in token or any(s in token for s in (".", "::", "->", "#"))
        or re.search(r"[a-z][A-Z]", token) or re.search(r"[A-Z]{2,}[a-z]", token)
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


@dataclass
class NameIndex:
    """Chunk names of one table version, held in memory (a few MB per 100k chunks)."""

    rows: list[dict]
    by_name: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    by_part: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    parts: list[frozenset[str]] = field(default_factory=list)

    @classmethod
    def build(cls, rows: list[dict]) -> NameIndex:
        index = cls(rows=rows)
        for i, row in enumerate(rows):
            names = chunk_names(row.get("name", ""))
            scopes = scope_names(row.get("scope", ""))
            row["_scopes"] = [s.lower() for s in scopes]
            row["_names"] = [n.lower() for n in names]
            row["_scope_parts"] = frozenset(p for s in scopes for p in word_parts(s))
            parts: set[str] = set()
            for name in names:
                last = _SEPARATORS.split(name)[-1]
                for key in {name.lower(), last.lower()}:
                    index.by_name[key].append(i)
                parts.update(word_parts(name))
            index.parts.append(frozenset(parts))
            for part in parts:
                index.by_part[part].append(i)
        return index

    def rank(self, query: str, accept=None, limit: int = 50) -> list[tuple[int, float]]:
        """Row numbers whose names match the query's identifiers, best first, with a 0-1 score."""
        scores: dict[int, float] = {}
        for ident in query_identifiers(query):
            pieces = [p for p in _SEPARATORS.split(ident) if p]
            last, scope = pieces[-1].lower(), [p.lower() for p in pieces[:-1]]
            for i in self.by_name.get(last, ()):
                row = self.rows[i]
                exact = 1.0 if not scope or scope[-1] in row["_scopes"] else 0.7
                scores[i] = max(scores.get(i, 0.0), exact)
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
        ranked.sort(key=lambda item: (-item[1], self.rows[item[0]]["path"], self.rows[item[0]]["start_line"]))
        return ranked[:limit]


_STOP = frozenset({
    "the", "a", "an", "of", "to", "in", "is", "if", "and", "or", "for", "from", "with", "by", "on",
    "at", "as", "be", "it", "its", "this", "that", "are", "was", "return", "returns", "given",
    "into", "not", "no", "all", "any", "new", "get", "set", "one", "two",
})


def stem(word: str) -> str:
    """A crude English stem so `reads`, `reading` and `read` meet (names are short)."""
    for suffix in ("ing", "ies", "es", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def query_words(query: str) -> set[str]:
    """Stemmed content words of a sentence, split like identifiers (`isUnspecified` too)."""
    return {stem(w) for w in word_parts(query) if len(w) >= 3 and w not in _STOP}


@dataclass
class NameWords:
    """Sentence-to-name matching: IDF-weighted share of a chunk's name words a query mentions.

    Catches `Returns true if the address is unspecified` -> `isUnspecified` by the name alone,
    where BM25 (over `search_text`) weighs those words among the whole chunk's. Postings are
    numpy arrays, so a query costs a few vector additions however common its words are.
    """

    postings: dict[str, np.ndarray]  # stem -> rows whose name has it
    scope_postings: dict[str, np.ndarray]  # stem -> rows whose enclosing scopes have it
    idf: dict[str, float]
    name_mass: np.ndarray  # per row: the IDF sum of its name's stems
    scope_size: np.ndarray  # per row: distinct scope stems (at least 1)

    @classmethod
    def build(cls, index: NameIndex) -> NameWords:
        import math

        stems = [frozenset(stem(p) for p in parts) for parts in index.parts]
        postings: dict[str, list[int]] = defaultdict(list)
        scope_postings: dict[str, list[int]] = defaultdict(list)
        scope_size = np.ones(len(stems), dtype=np.float64)
        for i, words in enumerate(stems):
            for word in words:
                postings[word].append(i)
        for i, row in enumerate(index.rows):
            scope = frozenset(stem(p) for p in row["_scope_parts"])
            scope_size[i] = max(1, len(scope))
            for word in scope:
                scope_postings[word].append(i)
        n = max(1, len(stems))
        idf = {w: math.log(1 + n / len(rows)) for w, rows in postings.items()}
        name_mass = np.array([sum(idf[w] for w in words) or 1.0 for words in stems], dtype=np.float64)
        return cls(
            {w: np.asarray(r, dtype=np.int64) for w, r in postings.items()},
            {w: np.asarray(r, dtype=np.int64) for w, r in scope_postings.items()},
            idf, name_mass, scope_size,
        )

    def rank(self, query: str, accept=None, limit: int = 50) -> list[tuple[int, float]]:
        """Row numbers best first with a 0-1 score (share of the name's IDF mass matched)."""
        words = [w for w in query_words(query) if w in self.postings]
        if not words:
            return []
        hit = np.zeros(len(self.name_mass), dtype=np.float64)
        for word in words:
            hit[self.postings[word]] += self.idf[word]
        candidates = np.flatnonzero(hit)
        scope = np.zeros(len(self.name_mass), dtype=np.float64)
        for word in query_words(query):
            rows = self.scope_postings.get(word)
            if rows is not None:
                scope[rows] += 1.0
        scores = np.minimum(
            1.0,
            hit[candidates] / self.name_mass[candidates] * 0.8
            + 0.25 * scope[candidates] / self.scope_size[candidates],
        )
        order = np.argsort(-scores, kind="stable")
        ranked: list[tuple[int, float]] = []
        for j in order:
            i = int(candidates[j])
            if accept is None or accept(i):
                ranked.append((i, float(scores[j])))
                if len(ranked) >= limit:
                    break
        return ranked
