"""The harness itself: the start page in Chromium, through axe."""

from __future__ import annotations

from typing import Any


def test_start_page_is_accessible_and_offers_no_navigation_before_sign_in(
    page: Any, assert_accessible: Any
) -> None:
    page.goto("/")
    assert page.get_by_role("heading", level=1).inner_text() == "tagwatch"
    assert page.locator(".govuk-service-navigation__item").count() == 0
    assert_accessible(page)
