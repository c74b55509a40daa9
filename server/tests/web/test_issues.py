"""The issue list and the issue page: tabs, counts, search, status changes, over real HTTP."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tripwire_server.store import Project

from .conftest import Collector, csrf_of, issue_ids, sentry


def _capture_zero_division(sdk: Any) -> None:
    # The traceback starts here, so every call groups into the same issue.
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        sdk.capture_exception()


def _report_errors(collector: Collector, project: Project) -> None:
    """Three ZeroDivisionErrors from one line, one KeyError tagged customer=acme, one warning."""
    with sentry(collector.dsn(project), release="shop@2.1.0", environment="production") as sdk:
        for _ in range(3):
            _capture_zero_division(sdk)
        with sdk.new_scope() as scope:
            scope.set_tag("customer", "acme")
            try:
                {"present": 1}["order-1234"]
            except KeyError:
                sdk.capture_exception()
        sdk.capture_message("disk almost full on db-7", level="warning")
    collector.wait_events(project, 5)


def _issue_id(collector: Collector, project: Project, type_: str) -> int:
    return next(i.id for i in collector.store.issues.list_issues(project.id) if i.type == type_)


def test_issue_list_shows_each_issue_once_with_its_event_count(
    collector: Collector, web: httpx.Client
) -> None:
    """Five events of three kinds show as three unresolved issues; the repeated one counts 3 events."""
    project = collector.new_project("list")
    _report_errors(collector, project)
    page = web.get(f"/projects/{project.id}/issues")
    assert page.status_code == 200
    assert len(issue_ids(page.text)) == 3
    assert "ZeroDivisionError" in page.text and "KeyError" in page.text
    assert "disk almost full on db-7" in page.text
    zero = _issue_id(collector, project, "ZeroDivisionError")
    row = page.text.split(f'href="/issues/{zero}"', 1)[1].split("</tr>", 1)[0]
    assert '<td class="num">3</td>' in row
    assert 'aria-label="3 events in the last 24 hours"' in row  # the sparkline
    assert re.search(r'Unresolved <span class="count">3</span>', page.text)
    assert re.search(r'Resolved <span class="count">0</span>', page.text)


def test_resolving_moves_the_issue_to_the_resolved_tab(collector: Collector, web: httpx.Client) -> None:
    """Clicking Resolve on an issue page removes it from Unresolved and lists it under Resolved."""
    project = collector.new_project("resolve")
    _report_errors(collector, project)
    zero = _issue_id(collector, project, "ZeroDivisionError")
    issue_page = web.get(f"/issues/{zero}")
    response = web.post(
        f"/issues/{zero}/status", data={"action": "resolve", "csrf_token": csrf_of(issue_page.text)}
    )
    assert response.status_code == 303
    assert zero not in issue_ids(web.get(f"/projects/{project.id}/issues").text)
    assert issue_ids(web.get(f"/projects/{project.id}/issues?status=resolved").text) == [zero]
    assert 'class="status status-resolved">resolved' in web.get(f"/issues/{zero}").text


def test_resolve_in_release_ignore_and_reopen(collector: Collector, web: httpx.Client) -> None:
    """An issue can be resolved in a named release, reopened, ignored and un-ignored from its page."""
    project = collector.new_project("actions")
    _report_errors(collector, project)
    key_error = _issue_id(collector, project, "KeyError")
    token = csrf_of(web.get(f"/issues/{key_error}").text)

    def act(action: str, **extra: str) -> str:
        data = {"action": action, "csrf_token": token, **extra}
        response = web.post(f"/issues/{key_error}/status", data=data)
        assert response.status_code == 303, response.text
        return web.get(f"/issues/{key_error}").text

    assert "resolved in shop@2.2.0" in act("resolve_in_release", release="shop@2.2.0")
    assert collector.store.issues.get_issue(key_error).resolved_in_release == "shop@2.2.0"
    assert "status-unresolved" in act("reopen")
    assert "status-ignored" in act("ignore")
    assert issue_ids(web.get(f"/projects/{project.id}/issues?status=ignored").text) == [key_error]
    assert "status-unresolved" in act("reopen")
    history = web.get(f"/issues/{key_error}").text.split("History", 1)[1]
    assert history.count('class="kind"') >= 4


def test_bulk_actions_change_every_ticked_issue(collector: Collector, web: httpx.Client) -> None:
    """Ticking two issues in the list and pressing Ignore ignores both and leaves the third alone."""
    project = collector.new_project("bulk")
    _report_errors(collector, project)
    page = web.get(f"/projects/{project.id}/issues")
    ids = issue_ids(page.text)
    data = {
        "csrf_token": csrf_of(page.text),
        "action": "ignore",
        f"issue_{ids[0]}": str(ids[0]),
        f"issue_{ids[1]}": str(ids[1]),
    }
    assert web.post(f"/projects/{project.id}/issues/bulk", data=data).status_code == 303
    statuses = {i.id: i.status for i in collector.store.issues.list_issues(project.id)}
    assert statuses == {ids[0]: "ignored", ids[1]: "ignored", ids[2]: "unresolved"}


def test_search_by_text_tag_level_and_release(collector: Collector, web: httpx.Client) -> None:
    """The search box narrows the list by free text, ``key:value`` tags, level and release."""
    project = collector.new_project("search")
    _report_errors(collector, project)
    zero = _issue_id(collector, project, "ZeroDivisionError")
    key_error = _issue_id(collector, project, "KeyError")

    def found(**params: str) -> set[int]:
        return set(issue_ids(web.get(f"/projects/{project.id}/issues", params=params).text))

    assert found(query="division") == {zero}
    assert found(query="customer:acme") == {key_error}
    assert found(query='customer:"acme"') == {key_error}
    assert found(query="customer:other") == set()
    assert found(query="level:warning") == {
        i.id for i in collector.store.issues.list_issues(project.id) if i.level == "warning"
    }
    assert found(level="warning") == found(query="level:warning")
    assert len(found(release="shop@2.1.0")) == 3
    assert found(release="shop@9") == set()
    assert found(environment="production", query="KeyError") == {key_error}
    empty = web.get(f"/projects/{project.id}/issues", params={"query": "nothing-like-this"})
    assert "No unresolved issue matches this search." in empty.text


def test_is_all_in_the_search_box_shows_every_status(collector: Collector, web: httpx.Client) -> None:
    """``is:resolved`` and ``is:all`` in the search box pick the status tab."""
    project = collector.new_project("is")
    _report_errors(collector, project)
    zero = _issue_id(collector, project, "ZeroDivisionError")
    collector.store.issues.set_issue_status(zero, "resolved")
    url = f"/projects/{project.id}/issues"
    assert issue_ids(web.get(url, params={"query": "is:resolved"}).text) == [zero]
    assert len(issue_ids(web.get(url, params={"query": "is:all"}).text)) == 3
    assert zero not in issue_ids(web.get(url).text)


def test_issue_page_explains_grouping_and_tag_distribution(collector: Collector, web: httpx.Client) -> None:
    """The issue page says why events were grouped and shows how its tag values are spread."""
    project = collector.new_project("why")
    _report_errors(collector, project)
    zero = _issue_id(collector, project, "ZeroDivisionError")
    page = web.get(f"/issues/{zero}").text
    why = page.split("Why grouped", 1)[1].split("</section>", 1)[0]
    assert "exception type ZeroDivisionError" in why
    assert "test_issues:_capture_zero_division" in why
    tags = page.split('<section class="block tags">', 1)[1].split("</section>", 1)[0]
    assert "shop@2.1.0" in tags and "100.0%" in tags
    assert page.count("/events/") >= 3  # the three events are listed


def test_unknown_issue_and_project_are_404(web: httpx.Client) -> None:
    """Pages of issues, events and projects that do not exist answer 404."""
    assert web.get("/issues/987654").status_code == 404
    assert web.get("/projects/no-such-project/issues").status_code == 404
    assert web.get("/issues/987654/events/" + "a" * 32).status_code == 404


def test_a_resolved_issue_that_comes_back_is_marked_regressed(
    collector: Collector, web: httpx.Client
) -> None:
    """An issue resolved in release 2.1.0 that happens again in 2.2.0 is back in Unresolved with a
    "regressed" badge and a history entry."""
    project = collector.new_project("regress")
    _report_errors(collector, project)
    zero = _issue_id(collector, project, "ZeroDivisionError")
    token = csrf_of(web.get(f"/issues/{zero}").text)
    web.post(
        f"/issues/{zero}/status",
        data={"action": "resolve_in_release", "release": "shop@2.1.0", "csrf_token": token},
    )
    with sentry(collector.dsn(project), release="shop@2.2.0") as sdk:
        _capture_zero_division(sdk)
    collector.wait_events(project, 6)
    listing = web.get(f"/projects/{project.id}/issues").text
    assert zero in issue_ids(listing)
    row = listing.split(f'href="/issues/{zero}"', 1)[1].split("</tr>", 1)[0]
    assert 'class="status status-regressed">regressed' in row
    page = web.get(f"/issues/{zero}").text
    assert "status-regressed" in page
    assert '<span class="kind">regressed</span>' in page


def test_issue_list_shows_the_projects_events_of_the_last_24_hours(
    collector: Collector, web: httpx.Client
) -> None:
    """Above the list, the project's event total for the last 24 hours is shown with its chart."""
    project = collector.new_project("total")
    _report_errors(collector, project)
    page = web.get(f"/projects/{project.id}/issues").text
    assert "5 events in the last 24 h" in page
    assert 'class="widechart"' in page


def test_issue_list_pages_through_more_than_fifty_issues(collector: Collector, web: httpx.Client) -> None:
    """With 55 issues the list shows 50, and its "Older" link leads to the remaining 5."""
    from .conftest import post_envelope

    project = collector.new_project("pages")
    items = [
        (
            {"type": "event"},
            {"message": f"distinct problem {chr(97 + i // 26)}{chr(97 + i % 26)}", "level": "error"},
        )
        for i in range(55)
    ]
    post_envelope(collector, project, items)
    collector.wait_events(project, 55)
    first = web.get(f"/projects/{project.id}/issues")
    assert len(issue_ids(first.text)) == 50
    assert "1–50 of 55" in first.text
    older = re.search(r'<a href="(\?[^"]*page=2[^"]*)">Older', first.text)
    assert older
    second = web.get(f"/projects/{project.id}/issues" + older.group(1).replace("&amp;", "&"))
    assert len(issue_ids(second.text)) == 5
    assert not set(issue_ids(second.text)) & set(issue_ids(first.text))
    assert "51–55 of 55" in second.text
