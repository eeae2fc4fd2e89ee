"""The one exception the self-hosted tooling raises for bad input.

Every user mistake (unreadable file, a private key where a public one is needed, an issuer that is
not https, a malformed policy, ...) is an :class:`InputError` whose message is one line meant for
a human. The command layer prints it as ``irsa-webhook: error: <message>`` and exits 2; nothing
below the command layer prints or exits.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input from the user: the message is a single line that says what to fix."""

    def __init__(self, message: str) -> None:
        # A multi-line message would break the "one clear line on stderr" contract.
        super().__init__(" ".join(message.split()))
