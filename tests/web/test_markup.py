"""The components written in Python are exactly what GOV.UK Frontend's macros write."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from tagwatch.web.markup import button_link, summary_list
from tagwatch.web.portal.caseload import CaseloadRow, table_rows
from tagwatch.web.templating import service_navigation, templates

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
CLASSES = st.sampled_from(["", "govuk-summary-list--no-border", "govuk-button--secondary"])


def _macro(path: str, name: str, params: dict[str, object]) -> str:
    source = f'{{% from "govuk_frontend_jinja/components/{path}/macro.html" import {name} %}}'
    return templates().env.from_string(source + f"{{{{ {name}(params) }}}}").render(params=params)


@given(st.lists(st.tuples(texts, texts | st.integers()), max_size=4), CLASSES)
def test_summary_list_is_the_macros(rows: list[tuple[str, object]], classes: str) -> None:
    params = [{"key": {"text": k}, "value": {"text": v}} for k, v in rows]
    written = _macro("summary-list", "govukSummaryList", {"classes": classes, "rows": params})
    assert summary_list(params, classes) == written


@given(texts.filter(str.strip), texts, CLASSES)
def test_button_link_is_the_macros(text: str, href: str, classes: str) -> None:
    params = {"text": text, "href": href or "#", "classes": classes}
    assert button_link(text, href or "#", classes) == _macro("button", "govukButton", params)


# The caseload template's rows as they were written in Jinja, the reference for `table_rows`.
CASELOAD_ROWS = """{% from "portal/macros.html" import status_tag %}
      {% for row in rows %}
        <tr class="govuk-table__row">
          <td class="govuk-table__cell"><a class="govuk-link" href="/people/{{ row.person_id }}">{{ row.name }}</a><br><span class="govuk-body-s">{{ row.ref }}</span></td>
          <td class="govuk-table__cell tw-nowrap">{{ row.date_of_birth.strftime("%-d %b %Y") if row.date_of_birth else "" }}</td>
          <td class="govuk-table__cell">{{ row.crn or "" }}</td>
          <td class="govuk-table__cell govuk-table__cell--numeric">{% if row.open_violations %}{{ status_tag(row.open_violations, "red") }}{% else %}0{% endif %}</td>
          <td class="govuk-table__cell govuk-table__cell--numeric">{% if row.unacknowledged_alerts %}{{ status_tag(row.unacknowledged_alerts, "orange") }}{% else %}0{% endif %}</td>
          <td class="govuk-table__cell">{% if row.last_seen %}{{ row.last_seen | london_time }}{% if row.stale %} {{ status_tag("No recent data", "yellow") }}{% endif %}{% else %}{{ row.device_status }}{% endif %}</td>
        </tr>
      {% endfor %}
"""  # noqa: E501

# Times a device can have reported; hypothesis takes naive bounds and adds the zone itself.
SEEN_BETWEEN = (dt.datetime(1990, 1, 1), dt.datetime(2100, 1, 1))  # noqa: DTZ001
caseload_rows = st.builds(
    CaseloadRow,
    person_id=st.integers(1, 10**6),
    ref=texts,
    name=texts,
    sort_name=st.just(""),
    date_of_birth=st.none() | st.dates(dt.date(1900, 1, 1)),
    crn=st.none() | texts,
    open_violations=st.integers(0, 3),
    unacknowledged_alerts=st.integers(0, 3),
    last_seen=st.none() | st.datetimes(*SEEN_BETWEEN, timezones=st.just(dt.UTC)),
    stale=st.booleans(),
    device_status=st.sampled_from(["No data yet", "No device fitted"]),
)


@given(st.lists(caseload_rows, max_size=5))
def test_caseload_rows_are_the_templates(rows: list[CaseloadRow]) -> None:
    assert table_rows(rows) == templates().env.from_string(CASELOAD_ROWS).render(rows=rows)


nav_items = st.lists(
    st.fixed_dictionaries({"href": texts, "text": texts, "active": st.booleans()}), max_size=4
)


@given(nav_items, texts, st.sampled_from(["", '<li class="x"><form>…</form></li>']))
def test_service_navigation_is_the_macros(
    navigation: list[dict[str, object]], name: str, navigation_end: str
) -> None:
    params = {
        "serviceName": name,
        "serviceUrl": "/",
        "navigation": navigation,
        "slots": {"navigationEnd": navigation_end} if navigation_end else {},
    }
    written = _macro("service-navigation", "govukServiceNavigation", params)
    assert service_navigation(params) == written
    assert service_navigation(params) is service_navigation(params)  # written once
