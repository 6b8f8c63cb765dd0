"""GOV.UK Frontend components that busy pages write often, as Python, not macros.

Each writes exactly what its GOV.UK Frontend macro writes for the plain text parameters it
takes (a test compares the two), without a macro call's cost: a person's page calls these a
dozen times per view. Pages needing the components' other parameters use the macros.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from markupsafe import Markup, escape

_ROW = (
    '  <div class="govuk-summary-list__row">\n'
    '    <dt class="govuk-summary-list__key">\n'
    "      {}\n"
    "    </dt>\n"
    '    <dd class="govuk-summary-list__value">\n'
    "      {}\n"
    "    </dd>\n"
    "  </div>\n"
)


def summary_list(rows: Iterable[Mapping[str, Any]], classes: str = "") -> Markup:
    """`govukSummaryList({"classes": classes, "rows": rows})` for rows of
    `{"key": {"text": ...}, "value": {"text": ...}}` (no actions, html or row classes)."""
    written = "".join(
        _ROW.format(escape(row["key"]["text"]), escape(row["value"]["text"])) for row in rows if row
    )
    extra = f" {escape(classes)}" if classes else ""
    return Markup(f'<dl class="govuk-summary-list{extra}">\n{written}</dl>')


def button_link(text: str, href: str, classes: str = "") -> Markup:
    """`govukButton({"text": text, "href": href, "classes": classes})`: a link as a button."""
    extra = f" {escape(classes)}" if classes else ""
    return Markup(
        f'<a href="{escape(href)}" role="button" draggable="false" class="govuk-button{extra}"'
        f' data-module="govuk-button">\n  {escape(text)}\n</a>'
    )


def install(globals_: dict[str, Any]) -> None:
    globals_["summary_list"] = summary_list
    globals_["button_link"] = button_link
