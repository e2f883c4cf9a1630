"""Finding chunks by identifier: `parse_header`, `HttpClient.send`, `feed parser`.

Embeddings blur identifiers and the full-text tokenizer does not split camelCase, so an
identifier query gets its own ranking of chunk names: exact names (and `Scope.name`) first,
then names sharing most of the query's word parts. Hybrid search fuses it with the others.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*(?:(?:\.|::|->|#)[A-Za-z_$][A-Za-z0-9_$]*)*")
_PART_SUFFIX = re.compile(r"\s*\(part \d+/\d+\)$")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_SEPARATORS = re.compile(r"\.|::|->|#")
_SCOPE_IDENT = re.compile(r"(?:class|def|fn|func|function|interface|struct|impl|module|trait)\s+"
                          r"([A-Za-z_$][A-Za-z0-9_$]*)|^([A-Za-z_$][A-Za-z0-9_$]*)$")


def word_parts(identifier: str) -> list[str]:
    """Lower-case word parts of an identifier: `HTTPClient.send_all` -> http, client, send, all."""
    return [p.lower() for piece in re.split(r"[^A-Za-z0-9]+", identifier) for p in _CAMEL.findall(piece)]


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
