"""Runs inside a pod's container (its source is passed to ``python -c``, see :mod:`.pods`): prints one
line, ``PROBE {json}``, with what the container sees of its AWS identity: its user, the AWS variables,
the token file (mode, owner, claims) and what the AWS SDK makes of them.

Switches, from the container's environment: ``PROBE_STS`` calls sts:GetCallerIdentity with the SDK's
credentials; ``PROBE_REGIONAL`` creates a client of a regional service (EC2), which needs a region;
``PROBE_DONE`` is a file written after the line (a startup probe waits for it); ``PROBE_SLEEP`` keeps
the container running that many seconds after.
Standard library and boto3 only: it runs on the image's Python, not in the test's process.
"""

import base64
import json
import os
import stat
import time


def probe():
    out = {
        "uid": os.getuid(),
        "gid": os.getgid(),
        "groups": sorted(os.getgroups()),
        "env": {k: v for k, v in os.environ.items() if k.startswith("AWS_")},
    }
    path = os.environ.get("AWS_WEB_IDENTITY_TOKEN_FILE") or os.environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
    if path:
        try:
            info = os.stat(path)  # through the kubelet's ..data symlinks: the file itself
            out["token_file"] = {"mode": oct(stat.S_IMODE(info.st_mode)), "uid": info.st_uid, "gid": info.st_gid}
            with open(path) as f:
                payload = f.read().strip().split(".")[1]
            out["claims"] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except OSError as exc:
            out["token_error"] = f"{type(exc).__name__}: {exc}"
    try:
        import boto3

        session = boto3.Session()
        out["region"] = session.region_name
        credentials = session.get_credentials()
        if credentials is not None:
            out["credential_method"] = credentials.method
            out["access_key"] = credentials.get_frozen_credentials().access_key
        if os.environ.get("PROBE_STS"):
            identity = session.client("sts").get_caller_identity()
            out["identity"] = {k: identity[k] for k in ("Arn", "Account", "UserId")}
        if os.environ.get("PROBE_REGIONAL"):
            session.client("ec2")
            out["regional_client"] = "created"
    except Exception as exc:  # reported to the test, which decides
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


print("PROBE " + json.dumps(probe()), flush=True)
if os.environ.get("PROBE_DONE"):
    with open(os.environ["PROBE_DONE"], "w") as done:
        done.write("done\n")
time.sleep(float(os.environ.get("PROBE_SLEEP") or 0))
