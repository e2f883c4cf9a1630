"""Turning a file's bytes into text the chunker can use, or a reason why not."""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field

from indexer_core.discovery import skip_reasons

BINARY_SNIFF_BYTES = 8192

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


@dataclass(frozen=True)
class MinifiedLimits:
    """A file is treated as minified when a line is this long, or lines are this long on average."""

    max_line_chars: int = 20_000
    max_mean_line_chars: int = 300
    min_bytes_for_mean: int = 4096


@dataclass
class DecodedText:
    text: str
    encoding: str
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Undecodable:
    reason: str
    detail: str


def decode_source(
    data: bytes, limits: MinifiedLimits = MinifiedLimits()
) -> DecodedText | Undecodable:
    """Decode bytes to LF-normalised text; binary and minified content get a skip reason.

    A BOM picks the encoding (UTF-8/16/32). Without one, a NUL byte in the first block means
    binary; otherwise UTF-8, with invalid sequences replaced and noted, never dropped.
    """
    notes: list[str] = []
    encoding = "utf-8"
    body = data
    for bom, name in _BOMS:
        if data.startswith(bom):
            encoding, body = name, data[len(bom) :]
            notes.append(f"byte order mark: {name}")
            break
    else:
        if b"\0" in data[:BINARY_SNIFF_BYTES]:
            return Undecodable(skip_reasons.BINARY, "NUL byte in the first 8 KiB")
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as exc:
        text = body.decode(encoding, errors="replace")
        notes.append(f"invalid {encoding} at byte {exc.start}: decoded with replacement characters")
    if "\0" in text:
        text = text.replace("\0", "\ufffd")
        notes.append("NUL characters replaced")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        notes.append("CRLF or CR line endings normalised")
    minified = _minified_reason(text, len(data), limits)
    if minified:
        return Undecodable(skip_reasons.MINIFIED, minified)
    return DecodedText(text=text, encoding=encoding, notes=notes)


def _minified_reason(text: str, size: int, limits: MinifiedLimits) -> str:
    lines = text.count("\n") + 1
    longest = max(map(len, text.split("\n"))) if size > limits.max_line_chars else 0
    if longest >= limits.max_line_chars:
        return f"a line of {longest} characters"
    if size >= limits.min_bytes_for_mean and size / lines > limits.max_mean_line_chars:
        return f"mean line length {size // lines} characters"
    return ""
