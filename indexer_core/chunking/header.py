"""The short context header that precedes a chunk's content in the text that is embedded.

The header names the file, the language and the enclosing scope, so that a method body
embedded alone still says where it lives, and the chunk's own name as plain words
(`isUnspecified` -> "is unspecified"), so that a sentence meets the identifier that spells
it. It is kept within `HEADER_TOKEN_RESERVE` model tokens by shortening the path and scope
from the left, never by touching the content.
"""

from __future__ import annotations

from indexer_core.chunking.linecost import is_one_token_separator, text_tokens
from indexer_core.chunking.tokens import TokenCounter
from indexer_core.search.names import chunk_names, word_parts

HEADER_TOKEN_RESERVE = 48
ELLIPSIS = "…"  # where a shortened path or scope was cut
NAME_WORDS_LIMIT = 60  # characters of the name line
_SCOPE_SEPARATOR = " > "
# Chunks whose name is not an identifier of the code: a file's top level, text windows,
# markdown sections.
_UNNAMED_KINDS = frozenset({"module", "text", "preamble", "section"})


def name_words(kind: str, name: str) -> str:
    """A code chunk's name(s) as lower-case words: `HTTPClient.sendAll, close` ->
    "http client send all, close"; "" for chunks that are not named units."""
    if kind in _UNNAMED_KINDS:
        return ""
    words = ", ".join(" ".join(word_parts(n)) for n in chunk_names(name))
    if len(words) > NAME_WORDS_LIMIT:
        words = words[:NAME_WORDS_LIMIT].rsplit(" ", 1)[0]
    return words


def format_header(
    path: str, language: str, scope: tuple[str, ...] | list[str], name: str = ""
) -> str:
    scope_text = _SCOPE_SEPARATOR.join(scope) if scope else "(top level)"
    name_line = f"name: {name}\n" if name else ""
    return f"path: {path}\nlanguage: {language}\nscope: {scope_text}\n{name_line}\n"


def fitted_header(
    path: str,
    language: str,
    scope: tuple[str, ...] | list[str],
    counter: TokenCounter,
    name: str = "",
) -> str:
    """The header, shortened until it fits `HEADER_TOKEN_RESERVE` tokens.

    `name` is the name line's words (`name_words`), kept until the last resort.
    """
    scope = list(scope)
    header = format_header(path, language, scope, name)
    fits = len(header) <= HEADER_TOKEN_RESERVE  # a token holds at least one character
    if fits or header_tokens(counter, header) <= HEADER_TOKEN_RESERVE:
        return header
    # Drop outer scopes first, then keep ever shorter tails of the path and the innermost name.
    while len(scope) > 1:
        scope = scope[1:]
        header = format_header(path, language, [ELLIPSIS, *scope], name)
        if header_tokens(counter, header) <= HEADER_TOKEN_RESERVE:
            return header
    tail_path, tail_scope = path, scope
    while True:
        tail_path = (
            ELLIPSIS + tail_path[max(2, len(tail_path) // 4) :] if len(tail_path) > 8 else tail_path
        )
        tail_scope = [s[-40:] for s in tail_scope]
        header = format_header(tail_path, language[:20], tail_scope, name)
        if header_tokens(counter, header) <= HEADER_TOKEN_RESERVE or len(tail_path) <= 8:
            break
    if header_tokens(counter, header) > HEADER_TOKEN_RESERVE:
        header = format_header(path.rsplit("/", 1)[-1][-16:], language[:12], [])
    return header


def header_tokens(counter: TokenCounter, header: str) -> int:
    """A header's exact token count from the word caches (`text_tokens`), without the
    tokenizer, also once shortened: the ellipsis that marks a cut is one token and a word
    boundary for the tokenizers counted that way (`is_one_token_separator`), and a header of a
    deep scope is tried several times per chunk."""
    if ELLIPSIS in header and is_one_token_separator(counter, ELLIPSIS):
        return text_tokens(counter, header.replace(ELLIPSIS, " ")) + header.count(ELLIPSIS)
    return text_tokens(counter, header)


def embed_text(header: str, content: str) -> str:
    return header + content
