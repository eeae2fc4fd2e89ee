"""Other tools' IRSA objects turned into ours (``irsa-webhook provision convert``).

One pure module per tool, each ``convert(source, options) -> (objects, warnings)``:
:mod:`.irsamanager` (irsa-manager's ``IRSA`` and ``IRSASetup``) and :mod:`.eksctl` (eksctl's
``ClusterConfig`` ``iam.serviceAccounts``). What they share, and why every converted role says
``adoption: Always``, is in :mod:`.common`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from webhook.provisioner.convert import eksctl, irsamanager
from webhook.provisioner.convert.common import Converter, Options

__all__ = ["Converter", "Options", "converter_for"]


def converter_for(obj: Mapping[str, Any]) -> Converter | None:
    """The converter of ``obj``'s tool, or None for an object no converter knows."""
    converters: tuple[tuple[Callable[[Mapping[str, Any]], bool], Converter], ...] = (
        (irsamanager.handles, irsamanager.convert),
        (eksctl.handles, eksctl.convert),
    )
    for handles, convert in converters:
        if handles(obj):
            return convert
    return None
