"""What ``provision`` prints: one report per object (JSON with ``-o json``), as text for a terminal."""

from __future__ import annotations

from typing import Any


def report(verb: str, kind: str, result: Any) -> dict[str, Any]:
    plan = result.plan
    changes = result.outcome.applied if verb != "plan" else (plan.changes if plan is not None else ())
    return {
        "kind": kind,
        "name": result.name,
        "verb": verb,
        "changes": [
            {"action": c.action, "target": c.target, "summary": c.summary, **({"diff": c.diff} if c.diff else {})}
            for c in changes
        ],
        "notes": list(plan.notes) if plan is not None else [],
        "blocked": plan.blocked if plan is not None else None,
        "error": result.outcome.error,
        "status": result.outcome.status,
    }


def print_text(verb: str, report: dict[str, Any]) -> None:
    done = {"plan": "to change", "apply": "changed", "delete": "deleted"}[verb]
    changes = report["changes"]
    head = f"{report['kind']}/{report['name']}: "
    head += f"{len(changes)} {done}" if changes else ("in sync" if verb == "plan" else "nothing to do")
    print(head)
    for change in changes:
        print(f"  {'~' if verb == 'plan' else '✓'} {change['action']} {change['target']}: {change['summary']}")
        for line in change.get("diff", "").splitlines():
            print(f"      {line}")
    for note in report["notes"]:
        print(f"  note: {note}")
    if report["blocked"]:
        print(f"  blocked: {report['blocked']}")
    if report["error"] and not report["blocked"]:
        print(f"  error: {report['error']}")
    status = report["status"] or {}
    for condition in status.get("conditions", []):
        mark = "✓" if condition.get("status") == "True" else "✗"
        print(f"  {mark} {condition.get('type')}: {condition.get('reason')}: {condition.get('message')}")
