"""The CSV text layer: encoding hints that fit the bytes, and records that know their physical line."""

from __future__ import annotations

import pytest

from stylesearch.data.csvtext import csv_records, data_lines, guess_encoding, read_text
from stylesearch.errors import CatalogError

UNDEFINED = [0x81, 0x8D, 0x8F, 0x90, 0x9D]  # the bytes cp1252 does not define


@pytest.mark.parametrize("byte", UNDEFINED)
def test_bytes_undefined_in_cp1252_get_the_latin_1_hint_not_cp1252(tmp_path, byte):
    path = tmp_path / "t.csv"
    path.write_bytes(b"id,title\n1,Caf\xe9\n2,odd " + bytes([byte]) + b"\n")
    assert guess_encoding(path.read_bytes()) == "latin-1"
    with pytest.raises(CatalogError, match=r"line 2: not valid utf-8.*--encoding latin-1$"):
        read_text(path, "utf-8")


@pytest.mark.parametrize("byte", UNDEFINED)
def test_read_as_latin_1_an_undefined_byte_is_named_not_sent_back_to_cp1252(tmp_path, byte):
    # cp1252 cannot decode this file, so "pass --encoding cp1252" would fail and send the user back here.
    path = tmp_path / "t.csv"
    path.write_bytes(b"id,title\n1,Caf\xe9\n2,odd " + bytes([byte]) + b"\n")
    with pytest.raises(CatalogError) as err:
        read_text(path, "latin-1")
    message = str(err.value)
    assert "line 3" in message and f"U+{byte:04X}" in message and f"byte {byte:#x}" in message
    assert "undefined in cp1252" in message and "--encoding cp1252" not in message


def test_cp1252_punctuation_read_as_latin_1_still_gets_the_cp1252_hint(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("id,title\n1,Levi’s\n".encode("cp1252"))
    with pytest.raises(CatalogError, match=r"line 2.*U\+0092.*--encoding cp1252"):
        read_text(path, "latin-1")
    assert read_text(path, "cp1252") == "id,title\n1,Levi’s\n"


def test_a_control_character_in_utf8_text_is_not_blamed_on_the_encoding(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,title\n1,twice converted \u0092s\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"line 2.*U\+0092.*remove it") as err:
        read_text(path, "utf-8")
    assert "--encoding" not in str(err.value)


def test_an_unknown_encoding_is_a_catalog_error_naming_it(tmp_path):
    (tmp_path / "t.csv").write_text("id\n1\n")
    with pytest.raises(CatalogError, match="unknown encoding 'klingon'"):
        read_text(tmp_path / "t.csv", "klingon")


def test_records_know_the_physical_line_they_start_on():
    text = 'h1,h2\n1,"a\nb\nc"\n\n2,x\r\n3,"y\r\nz"\n4,w'
    assert [(line, fields[0] if fields else None) for line, fields in csv_records(text)] == \
        [(1, "h1"), (2, "1"), (5, None), (6, "2"), (7, "3"), (9, "4")]
    assert data_lines(text) == [2, 6, 7, 9]
