"""The ops page's trace view: Jaeger's JSON turned into a tree with offsets and links."""

from __future__ import annotations

from typing import Any

from services.ops.traces import span_tree


def span(
    span_id: str, operation: str, start: int, duration: int, process: str, **refs: str
) -> dict[str, Any]:
    references = [
        {"refType": ref_type, "traceID": "t" if ref_type == "CHILD_OF" else "other", "spanID": ref}
        for ref_type, ref in (("CHILD_OF", refs.get("parent")), ("FOLLOWS_FROM", refs.get("link")))
        if ref
    ]
    return {
        "traceID": "t",
        "spanID": span_id,
        "operationName": operation,
        "references": references,
        "startTime": start,
        "duration": duration,
        "processID": process,
        "tags": [{"key": "span.kind", "type": "string", "value": "server"}],
    }


def test_spans_come_in_tree_order_with_depth_offsets_and_links() -> None:
    trace = {
        "traceID": "t",
        "processes": {"p1": {"serviceName": "intake"}, "p2": {"serviceName": "routing"}},
        "spans": [
            span("c", "case decided", 9_000, 500, "p2", parent="a", link="agent-rpc"),
            span("b", "process appeals.lifecycle.v1", 2_000, 1_000, "p2", parent="a"),
            span("a", "POST /v1/appeals", 1_000, 3_000, "p1", parent="surface-not-exported"),
        ],
    }
    tree = span_tree(trace)
    assert [s["span_id"] for s in tree["spans"]] == ["a", "b", "c"]
    assert [s["depth"] for s in tree["spans"]] == [0, 1, 1]
    assert tree["spans"][0]["parent_id"] == "surface-not-exported"  # a root all the same
    assert [s["offset_ms"] for s in tree["spans"]] == [0.0, 1.0, 8.0]
    assert tree["duration_ms"] == 8.5
    assert tree["services"] == ["intake", "routing"]
    assert tree["spans"][2]["links"] == [{"trace_id": "other", "span_id": "agent-rpc"}]
    assert tree["spans"][0]["kind"] == "server" and not tree["spans"][0]["error"]
