"""The audit's output: a table for people (one row per problem of a pod), a JSON document for programs,
and the one-line summary written to stderr."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import orjson

from webhook.audit.findings import (
    BLOCKED,
    CHANGED,
    CONDITIONAL,
    DENIED,
    DRIFT,
    DRIFT_NO_ROLE,
    DRIFT_NOT_FOUND,
    EVICTED,
    EVICTED_DRY_RUN,
    EVICTION_RESULTS,
    FAILED,
    GONE,
    LIMITED,
    MISSING,
    NO_CONTROLLER,
    NO_SERVICE_ACCOUNT,
    NOT_RECREATED,
    UNCHANGED,
    Eviction,
    Finding,
    MissingCredentials,
    Owner,
    Problem,
    RoleDrift,
)
from webhook.core.text import printable

if TYPE_CHECKING:  # the command imports the kubernetes client only when it runs
    from webhook.audit.scan import Result

COLUMNS = ("NAMESPACE", "POD", "SERVICEACCOUNT", "PROBLEM", "DETAIL", "OWNER/ACTION")
_ACTIONS = {
    EVICTED: "evicted",
    EVICTED_DRY_RUN: "would be evicted (dry run)",
    NO_CONTROLLER: "not evicted: no controller",
    NOT_RECREATED: "not evicted: owner does not recreate pods",
    NO_SERVICE_ACCOUNT: "not evicted: serviceaccount not found",
    DENIED: "not evicted: --strict would deny the replacement",
    UNCHANGED: "not evicted: the replacement would be the same",
    CONDITIONAL: "not evicted: matchConditions decide",
    LIMITED: "not evicted: --max-evictions reached",
    BLOCKED: "not evicted: disruption budget",
    GONE: "not evicted: pod gone",
    CHANGED: "not evicted: pod replaced",
    FAILED: "eviction failed",
}
_NO_ROLE = {DRIFT_NOT_FOUND: "(none: serviceaccount not found)", DRIFT_NO_ROLE: "(none: serviceaccount has no role)"}


def _cell(text: str) -> str:
    """One table cell: whitespace runs (a newline in an annotation) become one space, control characters
    are escaped (the values are tenants'), nothing is empty."""
    return printable(" ".join(text.split())) or "-"


def _owner(owner: Owner | None) -> str:
    return f"{owner.kind}/{owner.name}" if owner is not None else "<none>"


def detail(problem: Problem) -> str:
    """The DETAIL cell of a problem."""
    if isinstance(problem, MissingCredentials):
        parts = [f"role {problem.role_arn}" if problem.role_arn else "EKS Pod Identity"]
        if problem.source != "serviceaccount":
            parts[0] += f" (from {problem.source})"
        if problem.token_volume:
            parts.append(f"no {problem.token_volume} volume")
        if problem.containers:
            parts.append(f"no credentials in {', '.join(problem.containers)}")
        return "; ".join(parts)
    now = problem.current or _NO_ROLE.get(problem.reason, "(none)")
    text = "; ".join(f"{container}: {role} -> {now}" for container, role in problem.containers)
    return text if problem.marked else f"{text} (no admission marker)"


def action(finding: Finding) -> str:
    """The OWNER/ACTION cell: the controller, then what --evict did."""
    owner = _owner(finding.owner)
    if finding.eviction is None:
        return owner
    text = _ACTIONS.get(finding.eviction.result, finding.eviction.result)
    if finding.eviction.result in (BLOCKED, FAILED, DENIED) and finding.eviction.message:
        text += f" ({finding.eviction.message})"
    return f"{owner}: {text}"


def table(findings: Iterable[Finding]) -> str:
    """The findings as aligned columns (kubectl's layout), with a header; empty when there are none."""
    rows = [
        [_cell(f.namespace), _cell(f.pod), _cell(f.service_account), p.kind, _cell(detail(p)), _cell(action(f))]
        for f in findings
        for p in f.problems
    ]
    if not rows:
        return ""
    widths = [max(len(row[i]) for row in [list(COLUMNS), *rows]) for i in range(len(COLUMNS) - 1)]
    lines = []
    for row in [list(COLUMNS), *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        lines.append("   ".join([*cells, row[-1]]))
    return "\n".join(lines) + "\n"


def _problem_json(problem: Problem) -> dict[str, Any]:
    if isinstance(problem, MissingCredentials):
        return {
            "type": MISSING,
            "mode": problem.mode,
            "source": problem.source,
            "roleArn": problem.role_arn or None,
            "tokenVolume": problem.token_volume or None,
            "containers": list(problem.containers),
            "variables": list(problem.variables),
        }
    assert isinstance(problem, RoleDrift)
    return {
        "type": DRIFT,
        "reason": problem.reason,
        "marked": problem.marked,
        "currentRoleArn": problem.current or None,
        "containers": [{"name": name, "roleArn": role} for name, role in problem.containers],
    }


def _eviction_json(eviction: Eviction | None) -> dict[str, Any] | None:
    if eviction is None:
        return None
    return {"result": eviction.result, "message": eviction.message or None}


def finding_json(finding: Finding) -> dict[str, Any]:
    owner = finding.owner
    return {
        "namespace": finding.namespace,
        "pod": finding.pod,
        "uid": finding.uid,
        "serviceAccount": finding.service_account,
        "phase": finding.phase,
        "owner": {"kind": owner.kind, "name": owner.name} if owner is not None else None,
        "problems": [_problem_json(p) for p in finding.problems],
        "eviction": _eviction_json(finding.eviction),
    }


def summary_json(result: Result) -> dict[str, Any]:
    stats = result.stats
    evictions = result.evictions()
    return {
        "listed": stats.listed,
        "audited": stats.audited,
        "skipped": dict(sorted(stats.skipped.items())),
        "pages": stats.pages,
        "serviceAccounts": stats.service_accounts,
        "findings": len(result.findings),
        "missingCredentials": result.count(MISSING),
        "roleDrift": result.count(DRIFT),
        "resolvedOnRecheck": stats.resolved,
        "listRestarts": stats.restarts,
        "inconsistentContinues": stats.inconsistent,
        "evict": result.plan.evict,
        "dryRun": result.plan.dry_run,
        "evictions": {name: evictions[name] for name in EVICTION_RESULTS if evictions[name]},
    }


def document(result: Result) -> str:
    """``-o json``: the summary and every finding, in listing order."""
    body = {"summary": summary_json(result), "findings": [finding_json(f) for f in result.findings]}
    return orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n"


def summary_line(result: Result) -> str:
    """What stderr gets in every output format: counts, and what --evict did."""
    stats = result.stats
    line = (
        f"{stats.audited} pods audited ({stats.listed - stats.audited} skipped): "
        f"{result.count(MISSING)} lacking credentials, {result.count(DRIFT)} with a changed role"
    )
    if stats.resolved:
        line += f", {stats.resolved} resolved when read again"
    evictions = result.evictions()
    if evictions:
        done = ", ".join(f"{evictions[name]} {_ACTIONS[name]}" for name in EVICTION_RESULTS if evictions[name])
        line += f"; {done}"
    return line
