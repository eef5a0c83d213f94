"""Who is writing: the identity every face (Channel Access, pvAccess) hands the service
with each request and command. No transport here.
"""

from __future__ import annotations

from dataclasses import dataclass

ANONYMOUS = "anonymous"  # the user (or host) of a client that sent no name


@dataclass(frozen=True)
class Writer:
    """The user and host a write came from, as the client claimed them (or, with
    `--client-ip-as-host`, the host as the peer's IP address).
    """

    user: str = ANONYMOUS
    host: str = ANONYMOUS

    @classmethod
    def claimed(cls, user: str | None, host: str | None) -> Writer:
        """The writer of a client that claimed `user` and `host` (None or empty: none)."""
        return cls(user or ANONYMOUS, host or ANONYMOUS)

    def __str__(self) -> str:
        """`user@host`, as `ended_by` and the messages show it."""
        return f"{self.user}@{self.host}"


NOBODY = Writer()
"""The writer of what no client wrote (the IOC's own actions, tests of the service)."""
