"""ConfigMap mode (``--watch-config-map``): roles for ServiceAccounts from one ConfigMap, as kOps writes it.

The ConfigMap ``pod-identity-webhook`` in the webhook's ``--namespace`` holds, under the key
``config``, a JSON object from ``<namespace>/<serviceaccount>`` to an entry::

    {"default/app": {"RoleARN": "arn:aws:iam::111122223333:role/app", "Audience": "amazonaws.com",
                     "UseRegionalSTS": true, "TokenExpiration": 0},
     "test-*/runner": {"RoleARN": "arn:aws:iam::111122223333:role/runner"}}

Entries are read as Go's ``encoding/json`` reads upstream's struct: a JSON key names a field by its
exact name, else case-insensitively (Go's folding: ``rolearn``, ``ROLEARN``, also the Kelvin sign
for ``k`` and the long s for ``s``); unknown keys are ignored; ``null`` leaves a field unset; when
several keys name one field, the last wins.

Fields, and what is used when one is missing:

* ``RoleARN`` (string): the role; with ``--compose-role-arn`` a role name (no ``arn:``) becomes a
  role ARN, as for annotations. An entry without one still answers its lookup, with no role (so
  ``"ns/app": {}`` keeps ``ns/app`` out of a glob); a value that is not an IAM role ARN is used, with
  a warning, as for annotations; one over IAM's 2,048 characters is not kept: no role, and a warning.
* ``Audience`` (string): missing or empty: ``--token-audience`` [ours: upstream leaves the token
  without an audience, which STS rejects]; over 255 characters: ``--token-audience``, with a warning.
* ``UseRegionalSTS`` (a JSON boolean): missing: ``--sts-regional-endpoint``.
* ``TokenExpiration`` (a JSON integer): 0 or missing: ``--token-expiration``; below 600 is raised to
  600 and above 2^32 lowered to 2^32, each with a warning; a number that is not an integer
  (``3600.5``, ``1e3``, out of int64) gives the flag's value and a warning.

Lookup for namespace N and ServiceAccount S, first match wins:

1. the key ``N/S``;
2. keys whose namespace part is a glob (``*`` any run of characters, ``?`` one character; nothing
   else is special) matching N with name part S [ours: upstream only knows a literal ``*``], most
   specific first: the most literal (non-wildcard) characters in the namespace part; a tie goes to
   the key that comes first in the ConfigMap;
3. the key ``*/S``.

The name part is always literal: ServiceAccount names cannot hold ``*`` or ``?``, so a key whose
name part does is reported as a bad key rather than silently never matching.

Bad input never stops the webhook and never blocks admission [ours: upstream panics on a key without
``/``]: each problem is logged (by key) and counted in ``irsa_webhook_config_map_errors_total``.

* a key that is not ``<namespace>/<name>`` (no ``/``, more than one, an empty part, a wildcard in
  the name) and an entry that is not an object or has a field of the wrong type (a string for
  ``UseRegionalSTS``, a number for ``RoleARN``, ...): that entry is skipped, the rest is used;
* ``config`` that is not a JSON object: the last good map is kept.

A ConfigMap without the ``config`` key has no entries; deleting the ConfigMap removes its entries
[ours: upstream keeps them until it restarts]. The source is ready once the first list has come
back, whether or not the ConfigMap exists.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from webhook.core import gojson
from webhook.core.annotations import (
    MAX_AUDIENCE_CHARS,
    MAX_ROLE_ARN_CHARS,
    ROLE_ARN_TOO_LONG,
    parse_expiration,
    too_long,
)
from webhook.core.arn import ROLE_ARN_RE
from webhook.core.glob import Glob
from webhook.core.goparse import parse_go_int
from webhook.core.records import AdmissionWarning, Identity
from webhook.core.settings import Settings
from webhook.observe import metrics

log = logging.getLogger("irsa_webhook.configmap")

CONFIG_MAP_NAME = "pod-identity-webhook"
CONFIG_KEY = "config"
SOURCE = "configmap"
FIELDS = ("RoleARN", "Audience", "UseRegionalSTS", "TokenExpiration")
LOG_KEY_CHARS = 100  # bound of a key in a log line or warning


class InvalidEntry(ValueError):
    """An entry that cannot be used; the message says why (it is logged with the key)."""


def _shown(key: str) -> str:
    return repr(key[:LOG_KEY_CHARS] + ("..." if len(key) > LOG_KEY_CHARS else ""))


@dataclass(frozen=True, slots=True)
class Entry:
    """One usable entry, its defaults applied."""

    key: str
    role_arn: str
    audience: str
    sts_regional_endpoints: bool
    token_expiration: int
    warnings: tuple[AdmissionWarning, ...] = ()

    def identity(self, namespace: str, service_account: str) -> Identity:
        return Identity(
            namespace=namespace,
            name=service_account,
            role_arn=self.role_arn,
            audience=self.audience,
            sts_regional_endpoints=self.sts_regional_endpoints,
            token_expiration=self.token_expiration,
            warnings=self.warnings,
            source=SOURCE,
        )


# What Go's json.Unmarshal accepts for each field of upstream's struct (string, bool, int64).
_FIELD_TYPES: dict[str, tuple[type, str]] = {
    "RoleARN": (str, "string"),
    "Audience": (str, "string"),
    "UseRegionalSTS": (bool, "bool"),
    "TokenExpiration": (gojson.Number, "number"),
}


def parse_entry(key: str, value: Any, settings: Settings) -> Entry:
    """One entry of the map with the flags' defaults applied; InvalidEntry if it cannot be used."""
    if not isinstance(value, gojson.Object):
        raise InvalidEntry(f"the entry is a JSON {gojson.type_name(value)}, not an object")
    fields: dict[str, Any] = {}
    for name in FIELDS:
        field_value = gojson.field(value, name)
        if field_value is not None:  # Go: null (or no key) leaves the field as it is
            fields[name] = field_value
    for field, field_value in fields.items():
        expected, wanted = _FIELD_TYPES[field]
        if not isinstance(field_value, expected):
            raise InvalidEntry(f"{field} is a JSON {gojson.type_name(field_value)}, not a {wanted}")

    where = f"configmap entry {_shown(key)}"
    warnings: list[AdmissionWarning] = []
    # --compose-role-arn: a role name becomes a role ARN here, so the check below sees the final value.
    role_arn = settings.composed_role_arn(fields.get("RoleARN", ""))
    # The annotations' bounds: a ConfigMap holds up to 1 MiB, and what it maps is kept by every replica.
    long_role = too_long(ROLE_ARN_TOO_LONG, where, "RoleARN", role_arn, limit=MAX_ROLE_ARN_CHARS, instead="no role")
    if long_role is not None:
        warnings.append(long_role)
        role_arn = ""
    elif role_arn and not ROLE_ARN_RE.fullmatch(role_arn):
        # Still injected, as for annotations: an unusual partition must not break existing pods.
        warnings.append(
            AdmissionWarning.make("invalid-role-arn", f"{where} RoleARN {role_arn[:80]!r} is not an IAM role ARN")
        )
    audience: str = fields.get("Audience", "")
    long_audience = too_long(
        "audience-too-long",
        where,
        "Audience",
        audience,
        limit=MAX_AUDIENCE_CHARS,
        instead=f"using {settings.token_audience!r}",
    )
    if long_audience is not None:
        warnings.append(long_audience)
    audience = audience if audience and long_audience is None else settings.token_audience
    sts: bool = fields.get("UseRegionalSTS", settings.sts_regional_endpoint)
    expiration = settings.token_expiration
    number: gojson.Number | None = fields.get("TokenExpiration")
    if number is not None and parse_go_int(number.text) != 0:  # 0, as missing: the flag's value
        expiration, warning = parse_expiration(number.text, settings.token_expiration, where)
        if warning is not None:
            warnings.append(warning)
    return Entry(key, role_arn, audience, sts, expiration, tuple(warnings))


def _split_key(key: str) -> tuple[str, str]:
    """``<namespace>/<name>`` of a key; InvalidEntry (a bad key) otherwise."""
    namespace, slash, name = key.partition("/")
    if not slash:
        raise InvalidEntry("the key has no '/' (it must be <namespace>/<serviceaccount>)")
    if "/" in name:
        raise InvalidEntry("the key has more than one '/' (it must be <namespace>/<serviceaccount>)")
    if not namespace or not name:
        raise InvalidEntry("the key has an empty namespace or serviceaccount part")
    if "*" in name or "?" in name:
        raise InvalidEntry("the serviceaccount part is literal: wildcards only work in the namespace part")
    return namespace, name


@dataclass(frozen=True, slots=True)
class _Glob:
    pattern: Glob  # linear-time: the namespace being matched is chosen by a tenant
    literals: int  # characters of the namespace part that are not wildcards: the specificity
    order: int  # position of the key in the ConfigMap: breaks ties
    entry: Entry


@dataclass(frozen=True, slots=True)
class RoleMap:
    """The usable entries of one ConfigMap, indexed for the lookup order."""

    exact: dict[tuple[str, str], Entry]
    globs: dict[str, tuple[_Glob, ...]]  # by ServiceAccount name, most specific first
    wildcard: dict[str, Entry]  # "*/S", by ServiceAccount name

    def __len__(self) -> int:
        return len(self.exact) + sum(len(g) for g in self.globs.values()) + len(self.wildcard)

    def lookup(self, namespace: str, service_account: str) -> Entry | None:
        entry = self.exact.get((namespace, service_account))
        if entry is not None:
            return entry
        for glob in self.globs.get(service_account, ()):
            if glob.pattern.fullmatch(namespace):
                return glob.entry
        return self.wildcard.get(service_account)


EMPTY = RoleMap({}, {}, {})


@dataclass(frozen=True, slots=True)
class Problem:
    """Something in the ConfigMap that could not be used: logged and counted by reason."""

    reason: str  # a label of irsa_webhook_config_map_errors_total
    message: str


def parse_config(text: str, settings: Settings) -> tuple[RoleMap | None, list[Problem], list[Entry]]:
    """The ``config`` value → (the mapping, or None if it is not a JSON object; its problems; its entries)."""
    try:
        document = gojson.loads(text)
    except ValueError as exc:
        return None, [Problem("invalid_json", f"config is not valid JSON ({str(exc)[:200]})")], []
    if not isinstance(document, gojson.Object):
        return None, [Problem("invalid_json", f"config is a JSON {gojson.type_name(document)}, not an object")], []
    problems: list[Problem] = []
    # Go's map: a repeated key keeps its last value (at the place it first appeared).
    values: dict[str, Any] = {}
    for key, value in document:
        values[key] = value
    exact: dict[tuple[str, str], Entry] = {}
    globs: dict[str, list[_Glob]] = {}
    wildcard: dict[str, Entry] = {}
    entries: list[Entry] = []
    for order, (key, value) in enumerate(values.items()):
        try:
            namespace, name = _split_key(key)
        except InvalidEntry as exc:
            problems.append(Problem("bad_key", f"skipping configmap key {_shown(key)}: {exc}"))
            continue
        try:
            entry = parse_entry(key, value, settings)
        except InvalidEntry as exc:
            problems.append(Problem("invalid_entry", f"skipping configmap entry {_shown(key)}: {exc}"))
            continue
        entries.append(entry)
        if namespace == "*":
            wildcard[name] = entry
        elif "*" in namespace or "?" in namespace:
            literals = sum(1 for c in namespace if c not in "*?")
            globs.setdefault(name, []).append(_Glob(Glob(namespace), literals, order, entry))
        else:
            exact[(namespace, name)] = entry
    ordered = {name: tuple(sorted(found, key=lambda g: (-g.literals, g.order))) for name, found in globs.items()}
    return RoleMap(exact, ordered, wildcard), problems, entries


class ConfigMapSource:
    """The ``config_map`` source of the identity chain, fed by a watch of the ConfigMap.

    :meth:`replace` runs on the watch thread, :meth:`lookup` on the event loop: the mapping is an
    immutable object swapped whole, so a lookup never sees half an update.
    """

    name = SOURCE

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._mapping = EMPTY
        self._ready = False
        self._lock = threading.Lock()  # one writer at a time (the watch; tests may write too)

    @property
    def ready(self) -> bool:
        return self._ready

    def __len__(self) -> int:
        return len(self._mapping)

    def lookup(self, namespace: str, service_account: str) -> Identity | None:
        entry = self._mapping.lookup(namespace, service_account)
        return entry.identity(namespace, service_account) if entry is not None else None

    def replace(self, config_map: dict[str, Any] | None) -> None:
        """The ConfigMap as the cluster now has it (None: it does not exist). Never raises."""
        with self._lock:
            try:
                self._load(config_map)
            except Exception:  # a bug, not input: keep serving what we have
                metrics.CONFIG_MAP_ERROR_REASONS["unparseable"].inc()
                log.exception("cannot read configmap %s; keeping the previous entries", CONFIG_MAP_NAME)
            self._ready = True
            metrics.CONFIG_MAP_ENTRIES.set(len(self._mapping))

    def _load(self, config_map: dict[str, Any] | None) -> None:
        if config_map is None:
            if len(self._mapping):
                log.info("configmap %s is gone: its %d entries are removed", CONFIG_MAP_NAME, len(self._mapping))
            self._mapping = EMPTY
            return
        data = config_map.get("data")
        text = data.get(CONFIG_KEY) if isinstance(data, dict) else None
        if text is None:
            log.info("configmap %s has no %r key: no entries", CONFIG_MAP_NAME, CONFIG_KEY)
            self._mapping = EMPTY
            return
        if not isinstance(text, str):
            metrics.CONFIG_MAP_ERROR_REASONS["unparseable"].inc()
            log.warning("configmap %s: %r is not a string; keeping the previous entries", CONFIG_MAP_NAME, CONFIG_KEY)
            return
        mapping, problems, entries = parse_config(text, self._settings)
        for problem in problems:
            metrics.CONFIG_MAP_ERROR_REASONS[problem.reason].inc()
            log.warning("configmap %s: %s", CONFIG_MAP_NAME, problem.message)
        for entry in entries:
            for warning in entry.warnings:
                log.warning("configmap %s: %s", CONFIG_MAP_NAME, warning.message)
        if mapping is None:
            log.warning("configmap %s: keeping the previous %d entries", CONFIG_MAP_NAME, len(self._mapping))
            return
        self._mapping = mapping
        log.info("configmap %s loaded: %d entries", CONFIG_MAP_NAME, len(mapping))
