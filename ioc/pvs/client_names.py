"""`--client-ip-as-host`: a client's host is its IP address, and names it sends after its
first channel are ignored, as EPICS base's rsrv does with `asCheckClientIP`.

Without it, a client's host and user are the names it claims (`HOST_NAME`,
`CLIENT_NAME`), as caproto takes them.
"""

from __future__ import annotations

from typing import Any

import caproto as ca

from .circuit import Circuit


class IpHostCircuit(Circuit):
    """A circuit whose client host is the peer's IP address and whose user name is the
    one the client sent before its first channel.
    """

    def __init__(self, circuit: ca.VirtualCircuit, client: Any, context: Any) -> None:
        super().__init__(circuit, client, context)
        self.client_hostname = circuit.address[0]
        self._has_channel = False

    async def _process_command(self, command: Any) -> Any:
        """Ignore host names, and user names once a channel exists; note the first channel."""
        if isinstance(command, ca.HostNameRequest):
            return []
        if isinstance(command, ca.ClientNameRequest) and self._has_channel:
            self.log.debug("client name %r after the first channel ignored", command.name)
            return []
        if isinstance(command, ca.CreateChanRequest):
            self._has_channel = True
        return await super()._process_command(command)
