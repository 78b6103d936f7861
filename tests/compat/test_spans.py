"""`vault.spans.emit` (protocol part 1 §7.4) with the official client: spans are stored once per
(trace_id, span_id), the batch is checked before anything is stored, the scope is required,
and the operator sees a trace's spans."""

from datetime import datetime, timedelta, timezone

import pytest
from alter_sdk import App
from alter_sdk.exceptions import AlterSDKError, InsufficientScopeError
from alter_sdk.spans import UserSpan

from scenario import run

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def span(span_id: str, **fields) -> UserSpan:
    start = datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc)
    return UserSpan(
        trace_id=fields.pop("trace_id", TRACE),
        name=fields.pop("name", f"step {span_id}"),
        span_id=span_id,
        start_time=fields.pop("start_time", start),
        end_time=fields.pop("end_time", start + timedelta(seconds=2)),
        attributes=fields.pop("attributes", {"tool": "search"}),
        **fields,
    )


def test_spans_are_stored_once_and_shown_with_their_trace(server):
    async def scenario():
        app = App(api_key=server.api_key)
        first = await app.spans.emit([span("a1"), span("a2", parent_span_id="a1")])
        assert first.accepted == 2
        again = await app.spans.emit([span("a1"), span("a2", parent_span_id="a1")])
        assert again.accepted == 0, "a resent batch is absorbed"
        mixed = await app.spans.emit([span("a2"), span("a3")])
        assert mixed.accepted == 1
        # A naive datetime is taken as UTC; a span without an id gets one (never absorbed).
        naive = UserSpan(trace_id=TRACE, name="plan", start_time=datetime(2026, 12, 7, 9, 59))
        assert (await app.spans.emit([naive])).accepted == 1
        assert (await app.spans.emit([naive])).accepted == 1

    run(scenario())
    view = server.admin("GET", f"/apps/{server.app_id}/traces/{TRACE}")
    assert view.status_code == 200, view.text
    spans = view.json()["spans"]
    # The generated ids are random: pick the spans sent with ids by their ids.
    assert [s["span_id"] for s in spans if s["span_id"] in ("a1", "a2", "a3")] == ["a1", "a2", "a3"]
    assert len(spans) == 5
    assert spans[0]["name"] == "plan" and spans[0]["start_time"].startswith("2026-12-07T09:59:00")
    (a2,) = [s for s in spans if s["span_id"] == "a2"]
    assert a2["parent_span_id"] == "a1" and a2["attributes"] == {"tool": "search"}
    assert view.json()["events"] == []


def test_a_bad_span_refuses_the_whole_batch(server):
    trace = "0af7651916cd43dd8448eb211c80319c"

    async def scenario():
        app = App(api_key=server.api_key)
        start = datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc)
        backwards = span("b2", trace_id=trace, end_time=start - timedelta(seconds=1))
        with pytest.raises(AlterSDKError):
            await app.spans.emit([span("b1", trace_id=trace), backwards])

    run(scenario())
    view = server.admin("GET", f"/apps/{server.app_id}/traces/{trace}")
    assert view.json()["spans"] == [], "nothing of a refused batch is stored"


def test_emitting_spans_needs_the_spans_emit_scope(server):
    narrow = server.mint_key(name="no-spans", scopes=["tokens:retrieve"])

    async def scenario():
        app = App(api_key=narrow["api_key"])
        with pytest.raises(InsufficientScopeError) as refused:
            await app.spans.emit([span("c1")])
        assert "spans:emit" in refused.value.required

    run(scenario())
