from hypothesis import given
from hypothesis import strategies as st

from adapter.text import REPLACEMENT, printable, storable


def test_storable_replaces_what_no_database_holds() -> None:
    assert storable("db\x00-01\ud800") == f"db{REPLACEMENT}-01{REPLACEMENT}"
    assert storable("tab\tand\x1bescape") == "tab\tand\x1bescape"


def test_printable_keeps_lines_and_drops_controls() -> None:
    assert printable("line one\r\nline two\rthree\x1b[31m\x07\u0085") == "line one\nline two\nthree[31m"
    assert printable("a\tb\ud800") == f"a\tb{REPLACEMENT}"


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())))
def test_printable_text_is_xml_and_utf8(text: str) -> None:
    shown = printable(text)
    shown.encode("utf-8")
    assert all(
        ch in "\t\n" or 0x20 <= ord(ch) <= 0xD7FF or 0xE000 <= ord(ch) <= 0xFFFD or ord(ch) >= 0x10000
        for ch in shown
    )
    storable(text).encode("utf-8")
    assert "\x00" not in storable(text)
