"""The demo's guide: concrete commands, for the default lab and for a named one."""

from __future__ import annotations

from bot.demo import guide


def test_the_default_labs_guide_names_no_prefix() -> None:
    text = guide("lh")
    for step in ("/lasthop lab break web1", "sudo lasthop lab break web1)", "/lasthop lab client www-a",
                 "/lasthop lab heal web1", "Fail back www-a to web1", "as bob approve N", "auto on", "auto off",
                 "sudo lasthop lab down"):
        assert step in text
    assert "--prefix" not in text


def test_another_labs_guide_says_which_lab_from_a_second_terminal() -> None:
    text = guide("lc")
    assert "sudo lasthop lab break web1 --prefix lc" in text and "sudo lasthop lab down --prefix lc" in text
