"""Decoding: BOMs, invalid UTF-8, line endings, binary and minified content."""

import codecs

from indexer_core.discovery import skip_reasons
from indexer_core.discovery.decoding import DecodedText, Undecodable, decode_source
from indexer_core.discovery.hashing import blob_id


def test_utf16_with_bom_is_decoded() -> None:
    out = decode_source(codecs.BOM_UTF16_LE + "def f():\r\n    return 1\r\n".encode("utf-16-le"))
    assert isinstance(out, DecodedText)
    assert out.text == "def f():\n    return 1\n"
    assert out.encoding == "utf-16-le"


def test_utf8_bom_is_stripped() -> None:
    out = decode_source(codecs.BOM_UTF8 + b"x = 1\n")
    assert isinstance(out, DecodedText) and out.text == "x = 1\n"


def test_invalid_utf8_is_replaced_and_noted() -> None:
    out = decode_source(b"name = '\xff\xfe caf\xc3\xa9'\n")
    assert isinstance(out, DecodedText)
    assert "\ufffd" in out.text and "café" in out.text
    assert any("invalid utf-8" in note for note in out.notes)


def test_lone_cr_and_crlf_are_normalised() -> None:
    out = decode_source(b"a = 1\rb = 2\r\nc = 3\n")
    assert isinstance(out, DecodedText) and out.text == "a = 1\nb = 2\nc = 3\n"


def test_nul_byte_means_binary() -> None:
    out = decode_source(b"\x7fELF\x00\x01\x02" + b"\x00" * 100)
    assert isinstance(out, Undecodable) and out.reason == skip_reasons.BINARY


def test_minified_content_is_skipped() -> None:
    out = decode_source(b"var a=1;" * 5000)
    assert isinstance(out, Undecodable) and out.reason == skip_reasons.MINIFIED


def test_blob_id_matches_git() -> None:
    assert blob_id(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"
