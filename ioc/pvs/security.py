"""Access security: every PV, and its record fields, get the rights of their ACF group.

Read-only PVs belong to group DEFAULT, writable ones (SUBMIT, RUN, QUEUE:* writables,
ERROR:CLEAR, the control PVs) to CONTROL. A read-only PV never becomes writable. The
rules are looked up on every check, so a `RELOAD` that re-read the ACF applies at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from caproto import AccessRights, ChannelData

from ..access import DEFAULT_GROUP, AccessConfig
from .writers import writable

CONTROL_GROUP = "CONTROL"


def access_group(channel: ChannelData) -> str:
    """The ACF group of `channel`: CONTROL if a client may ever write it."""
    return CONTROL_GROUP if writable(channel) else DEFAULT_GROUP


def apply_access_security(pvdb: Mapping[str, ChannelData], config: Callable[[], AccessConfig]) -> None:
    """Limit every channel of `pvdb` (and its fields) to what the ACF in force (`config()`)
    grants its group.
    """
    for channel in pvdb.values():
        group = access_group(channel)
        for target in (channel, *getattr(channel, "fields", {}).values()):
            target.check_access = _restricted(target.check_access, config, group)


def _restricted(
    own: Callable[[str, str], AccessRights], config: Callable[[], AccessConfig], group: str
) -> Callable[[str, str], AccessRights]:
    def check_access(host: str, user: str) -> AccessRights:
        return own(host, user) & AccessRights(int(config().rights(group, host, user)))

    return check_access
