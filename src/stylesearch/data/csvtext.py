"""A catalogue CSV as text: decoded with an encoding hint that fits its bytes, and split into records
that know the physical line they start on (a quoted field may span lines)."""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

from stylesearch.errors import CatalogError

# C1 control characters: never in real text, but what cp1252's punctuation becomes when read as latin-1.
C1_CONTROL = re.compile("[\u0080-\u009f]")
# The five bytes cp1252 leaves undefined: Python's cp1252 cannot decode them, and latin-1 makes them C1
# controls, so a file holding one is text in neither.
CP1252_UNDEFINED = b"\x81\x8d\x8f\x90\x9d"


def guess_encoding(raw: bytes) -> str:
    """The encoding most likely to fit bytes that are not UTF-8: cp1252 if it decodes them, else latin-1.

    Bytes 0x80-0x9F are punctuation in cp1252 (’ “ ” € …) and invisible controls in latin-1, so a file
    that cp1252 can read is read right by cp1252 and wrong by latin-1.
    """
    try:
        raw.decode("cp1252")
    except UnicodeDecodeError:
        return "latin-1"
    return "cp1252"


def read_text(path: Path, encoding: str) -> str:
    """The file's text; a CatalogError naming the line and the encoding to pass when it does not decode."""
    try:
        utf8 = codecs.lookup(encoding).name == "utf-8"
    except LookupError as err:
        raise CatalogError(f"{path}: unknown encoding {encoding!r}; pass e.g. --encoding cp1252") from err
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8-sig" if utf8 else encoding)
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise CatalogError(
            f"{path} line {line}: not valid {encoding} (byte {raw[err.start]:#x} at offset {err.start}); "
            f"pass the file's encoding: --encoding {guess_encoding(raw)}"
        ) from err
    control = C1_CONTROL.search(text)
    if control:
        # latin-1 maps 0x80-0x9F to invisible C1 controls; in cp1252 those bytes are ’ “ ” € ... — the
        # usual bytes of a Windows-made CSV. Storing the controls would corrupt every such title.
        line = text[: control.start()].count("\n") + 1
        raise CatalogError(f"{path} line {line}: decoded as {encoding}, the text holds the control character "
                           f"U+{ord(control.group()):04X}, which no title means; {_control_fix(raw, utf8)}")
    return text


def _control_fix(raw: bytes, utf8: bool) -> str:
    """What to do about a C1 control: another encoding only when one fits every byte of the file."""
    if utf8:  # the control is a character of the UTF-8 text itself: no other encoding removes it
        return "remove it from that line"
    if guess_encoding(raw) == "cp1252":
        return "the file is most likely cp1252: pass --encoding cp1252"
    # Suggesting cp1252 here would fail on these bytes, and its hint would send the user back to latin-1.
    at = next(i for i, b in enumerate(raw) if b in CP1252_UNDEFINED)
    line = raw[:at].count(b"\n") + 1
    return (f"byte {raw[at]:#x} (line {line}) is undefined in cp1252 and a control "
            "character in latin-1, so no encoding makes it text: remove or replace it in the file")


def csv_records(text: str) -> Iterator[tuple[int, list[str]]]:
    """Each CSV record (the header first) with the physical line it starts on, counting "\\n" as
    `read_text`'s messages do; a quoted field holding newlines makes one record of several lines."""
    reader = csv.reader(io.StringIO(text))
    start = 1
    for fields in reader:
        yield start, fields
        start = reader.line_num + 1


def data_lines(text: str) -> list[int]:
    """The starting line of every data record that pandas' CSV reader keeps (it skips blank lines)."""
    records = csv_records(text)
    next(records, None)  # the header
    return [line for line, fields in records if fields and not (len(fields) == 1 and not fields[0].strip())]
