"""The audit's output formats: the table's layout and cells, the JSON document, the summary line, and
the exit code a result maps to."""

from __future__ import annotations

import json

from webhook.audit import report
from webhook.audit.findings import (
    BLOCKED,
    DRIFT_NO_ROLE,
    DRIFT_NOT_FOUND,
    EVICTED,
    FAILED,
    NO_CONTROLLER,
    Eviction,
    Finding,
    MissingCredentials,
    Owner,
    Problem,
    RoleDrift,
)
from webhook.audit.scan import Plan, Result, Stats
from webhook.core.mutate import CONTAINER_CREDENTIAL_VARS, CREDENTIAL_VARS
from webhook.core.records import CONTAINER_CREDENTIALS, STS_WEB_IDENTITY
from webhook.core.settings import Settings
from webhook.core.text import printable

ROLE = "arn:aws:iam::111122223333:role/app"
MISSING = MissingCredentials(
    STS_WEB_IDENTITY, "serviceaccount", ROLE, "aws-iam-token", ("init", "web"), CREDENTIAL_VARS
)


def finding(name: str, *problems: Problem, owner: Owner | None = None, eviction: Eviction | None = None) -> Finding:
    return Finding("shop", name, f"uid-{name}", "app", "Running", owner, problems, eviction)


def result(findings: list[Finding], evict: bool = False) -> Result:
    stats = Stats(listed=12, audited=10, pages=1)
    stats.skipped["finished"] = 2
    return Result(findings, stats, Plan(Settings(), evict=evict))


def test_the_table_aligns_columns_and_has_one_row_per_problem() -> None:
    drift = RoleDrift((("web", "arn:aws:iam::111122223333:role/old"),), ROLE, "changed")
    text = report.table(
        [finding("a-much-longer-pod-name", MISSING, drift, owner=Owner("ReplicaSet", "web-7d9")), finding("b", MISSING)]
    )
    lines = text.splitlines()
    assert len(lines) == 4
    header = lines[0]
    assert header.split() == ["NAMESPACE", "POD", "SERVICEACCOUNT", "PROBLEM", "DETAIL", "OWNER/ACTION"]
    for column in ("POD", "SERVICEACCOUNT", "PROBLEM", "DETAIL", "OWNER/ACTION"):
        start = header.index(column)
        assert all(line[start - 1] == " " and line[start] != " " for line in lines[1:]), column
    assert lines[1].split()[3] == "missing-credentials"
    assert lines[2].split()[3] == "role-drift"
    assert "web: arn:aws:iam::111122223333:role/old -> " + ROLE in lines[2]
    assert lines[1].endswith("ReplicaSet/web-7d9")
    assert lines[3].endswith("<none>")
    assert report.table([]) == ""


def test_details_say_what_is_missing_and_what_changed() -> None:
    assert report.detail(MISSING) == f"role {ROLE}; no aws-iam-token volume; no credentials in init, web"
    pod_identity = MissingCredentials(
        CONTAINER_CREDENTIALS, "pod-identity", "", "", ("web",), CONTAINER_CREDENTIAL_VARS
    )
    assert report.detail(pod_identity) == "EKS Pod Identity (from pod-identity); no credentials in web"
    from_map = MissingCredentials(STS_WEB_IDENTITY, "configmap", ROLE, "aws-iam-token", (), CREDENTIAL_VARS)
    assert report.detail(from_map) == f"role {ROLE} (from configmap); no aws-iam-token volume"
    gone = RoleDrift((("a", ROLE), ("b", ROLE)), "", DRIFT_NOT_FOUND)
    assert (
        report.detail(gone)
        == f"a: {ROLE} -> (none: serviceaccount not found); b: {ROLE} -> (none: serviceaccount not found)"
    )
    removed = RoleDrift((("a", ROLE),), "", DRIFT_NO_ROLE)
    assert report.detail(removed) == f"a: {ROLE} -> (none: serviceaccount has no role)"


def test_a_cell_stays_on_one_line() -> None:
    hostile = RoleDrift((("web", "arn:aws:iam::1:role/x\nFAKE   ROW"),), ROLE, "changed")
    lines = report.table([finding("p", hostile)]).splitlines()
    assert len(lines) == 2
    assert "role/x FAKE ROW ->" in lines[1]


def test_actions_say_what_evict_did() -> None:
    owner = Owner("StatefulSet", "db")
    assert report.action(finding("p", MISSING, owner=owner)) == "StatefulSet/db"
    assert report.action(finding("p", MISSING, owner=owner, eviction=Eviction(EVICTED))) == "StatefulSet/db: evicted"
    assert report.action(finding("p", MISSING, eviction=Eviction(NO_CONTROLLER, "bare"))) == (
        "<none>: not evicted: no controller"
    )
    blocked = Eviction(BLOCKED, "HTTP 429 Too Many Requests: Cannot evict pod")
    assert report.action(finding("p", MISSING, owner=owner, eviction=blocked)) == (
        "StatefulSet/db: not evicted: disruption budget (HTTP 429 Too Many Requests: Cannot evict pod)"
    )


def test_the_json_document() -> None:
    evicted = finding("a", MISSING, owner=Owner("ReplicaSet", "web"), eviction=Eviction(EVICTED))
    document = json.loads(
        report.document(result([evicted, finding("b", RoleDrift((("web", ROLE),), "", DRIFT_NO_ROLE))], True))
    )
    assert document["summary"] == {
        "listed": 12,
        "audited": 10,
        "skipped": {"finished": 2},
        "pages": 1,
        "serviceAccounts": 0,
        "findings": 2,
        "missingCredentials": 1,
        "roleDrift": 1,
        "resolvedOnRecheck": 0,
        "listRestarts": 0,
        "inconsistentContinues": 0,
        "evict": True,
        "dryRun": False,
        "evictions": {"evicted": 1},
    }
    first, second = document["findings"]
    assert first == {
        "namespace": "shop",
        "pod": "a",
        "uid": "uid-a",
        "serviceAccount": "app",
        "phase": "Running",
        "owner": {"kind": "ReplicaSet", "name": "web"},
        "problems": [
            {
                "type": "missing-credentials",
                "mode": "sts_web_identity",
                "source": "serviceaccount",
                "roleArn": ROLE,
                "tokenVolume": "aws-iam-token",
                "containers": ["init", "web"],
                "variables": ["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"],
            }
        ],
        "eviction": {"result": "evicted", "message": None},
    }
    assert second["problems"] == [
        {
            "type": "role-drift",
            "reason": "no-role",
            "marked": True,
            "currentRoleArn": None,
            "containers": [{"name": "web", "roleArn": ROLE}],
        }
    ]
    assert second["owner"] is None
    assert second["eviction"] is None


def test_exit_codes_and_the_summary_line() -> None:
    assert result([]).exit_code == 0
    assert result([finding("a", MISSING)]).exit_code == 1
    assert result([finding("a", MISSING, eviction=Eviction(BLOCKED))]).exit_code == 1
    assert (
        result(
            [finding("a", MISSING, eviction=Eviction(EVICTED)), finding("b", MISSING, eviction=Eviction(FAILED))]
        ).exit_code
        == 2
    )
    line = report.summary_line(result([finding("a", MISSING, eviction=Eviction(EVICTED))]))
    assert line == "10 pods audited (2 skipped): 1 lacking credentials, 0 with a changed role; 1 evicted"


def test_tenant_values_cannot_drive_the_operators_terminal() -> None:
    """A role ARN (or env value) with an ANSI escape, a carriage return or a bidi override reaches the
    table escaped: visible, and nothing a terminal acts on."""
    hostile = "arn:aws:iam::111122223333:role/x\x1b[2J\x1b[31mfine\r\u202eevil\x07"
    drift = RoleDrift((("web", hostile),), ROLE, "changed")
    eviction = Eviction(FAILED, "HTTP 500: \x1b]0;title\x07")
    text = report.table([finding("p", drift, owner=Owner("ReplicaSet", "rs"), eviction=eviction)])
    assert all(c in "\n" or c.isprintable() for c in text), repr(text)
    assert "role/x\\x1b[2J\\x1b[31mfine \\u202eevil\\x07" in text  # \\r is whitespace: one space
    assert "\\x1b]0;title\\x07" in text


def test_plain_values_are_unchanged() -> None:
    assert printable("arn:aws:iam::111122223333:role/app é ü") == "arn:aws:iam::111122223333:role/app é ü"
