"""bot.echo: what a reply may quote of what a person typed."""

from __future__ import annotations

import pytest

from bot.echo import ECHO_LIMIT, quoted, shortened, terminal


@pytest.mark.parametrize("word", ["www-a", "198.51.100.32/27", "web1", "dry-run", "a" * ECHO_LIMIT])
def test_a_plain_word_is_quoted(word: str) -> None:
    assert quoted(word, "that") == f"'{word}'"


@pytest.mark.parametrize("text", ["<!channel>", "<@U123>", "<#C123>", "<https://x|y>", "&", "a&amp;b", "",
                                  "a" * (ECHO_LIMIT + 1), "www-a\x1b[2J", "www-a\u202e", "two words", "`x`"])
def test_anything_else_is_the_stand_in(text: str) -> None:
    assert quoted(text, "that word") == "that word"


def test_the_terminal_sees_markup_as_text_but_no_control_character_and_a_capped_length() -> None:
    assert terminal("<!channel> & <@U123>") == "'<!channel> & <@U123>'"
    assert terminal("ok\x1b[2J\u202e\n") == "'ok?[2J??'"
    long = terminal("x" * 500)
    assert long == "'" + "x" * ECHO_LIMIT + "…'"


def test_a_value_in_an_error_is_made_visible_and_shortened_saying_how_long_it_was() -> None:
    assert shortened("web1") == "web1"
    assert shortened("two\nlines\x1b\u202e") == "two\\nlines\\x1b\\u202e"
    assert shortened("a" * ECHO_LIMIT) == "a" * ECHO_LIMIT
    assert shortened("a" * 5000) == "a" * ECHO_LIMIT + "… (5000 characters)"
    assert shortened("a" * 5000, 10) == "a" * 10 + "… (5000 characters)"
    # An escape is never cut in half, and what is shown stays within the limit.
    assert shortened("\x00" * 100) == "\\x00" * (ECHO_LIMIT // 4) + "… (100 characters)"
    assert shortened("ab\ud800") == "ab\\ud800"
