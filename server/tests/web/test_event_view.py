"""Turning stored events into view data never fails, whatever shape an SDK sent."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tripwire_server.web._event_view import event_view
from tripwire_server.web._render import ENV

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
frame = st.fixed_dictionaries(
    {},
    optional={
        "filename": json_values,
        "function": json_values,
        "lineno": json_values,
        "in_app": json_values,
        "context_line": json_values,
        "pre_context": json_values,
        "post_context": json_values,
        "vars": json_values,
        "module": json_values,
    },
)
exception = st.fixed_dictionaries(
    {},
    optional={
        "type": json_values,
        "value": json_values,
        "mechanism": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {},
                optional={
                    "exception_id": json_values,
                    "parent_id": json_values,
                    "source": json_values,
                    "handled": json_values,
                    "is_exception_group": json_values,
                },
            ),
        ),
        "stacktrace": st.one_of(json_values, st.fixed_dictionaries({"frames": st.lists(frame, max_size=4)})),
    },
)
events = st.fixed_dictionaries(
    {},
    optional={
        "exception": st.one_of(
            json_values, st.fixed_dictionaries({"values": st.lists(exception, max_size=3)})
        ),
        "breadcrumbs": json_values,
        "request": json_values,
        "user": json_values,
        "tags": json_values,
        "contexts": json_values,
        "extra": json_values,
        "logentry": json_values,
        "message": json_values,
        "threads": json_values,
        "stacktrace": json_values,
        "sdk": json_values,
        "level": json_values,
        "release": json_values,
    },
)


@pytest.mark.slow  # 150 nested events drawn by hypothesis: ~5 s under coverage
@settings(max_examples=150, deadline=None)
@given(events)
def test_any_event_shape_renders(data: dict[str, Any]) -> None:
    """Fields of unexpected types are shown as text or skipped; the event body always renders."""
    html = ENV.get_template("_event.html").render(view=event_view(data))
    assert isinstance(html, str)


def test_exception_group_members_are_indented_but_causes_are_not() -> None:
    """Depth counts exception-group membership only: a member's cause stays at the member's level."""
    data = {
        "exception": {
            "values": [
                {"type": "KeyError", "mechanism": {"exception_id": 2, "parent_id": 1, "source": "__cause__"}},
                {
                    "type": "ValueError",
                    "mechanism": {"exception_id": 1, "parent_id": 0, "source": "exceptions[0]"},
                },
                {"type": "ExceptionGroup", "mechanism": {"exception_id": 0, "is_exception_group": True}},
            ]
        }
    }
    views = event_view(data).exceptions
    assert [(v.type, v.depth, v.relation) for v in views] == [
        ("ExceptionGroup", 0, ""),
        ("ValueError", 1, "In the exception group, exceptions[0]"),
        ("KeyError", 1, "Caused by"),
    ]
    assert views[0].is_group
