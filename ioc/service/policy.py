"""The rules in force: the access security file (who may write which PV) and the
permissions file (which plans and devices each group may use). `RELOAD` re-reads both.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..access import ALLOW_ALL, AccessConfig, AcfError, load_acf
from ..identity import Writer
from ..models import Task
from .permissions import Permissions, PermissionsError, load_permissions

log = logging.getLogger(__name__)


class PolicyError(ValueError):
    """A rules file that does not parse: `<file>:<line>: <reason>`."""


@dataclass(frozen=True)
class Rules:
    """One reading of the rules files."""

    access: AccessConfig = ALLOW_ALL
    permissions: Permissions | None = None  # None: no --permissions, every plan and device

    @classmethod
    def read(cls, acf: Path | None, permissions: Path | None) -> Rules:
        """Read both files; raise `PolicyError` naming the file and line of a problem."""
        try:
            return cls(
                load_acf(acf) if acf is not None else ALLOW_ALL,
                load_permissions(permissions) if permissions is not None else None,
            )
        except (AcfError, PermissionsError) as error:
            raise PolicyError(str(error)) from None
        except OSError as error:  # the ACF could not be read
            raise PolicyError(f"{error.filename}: cannot read: {error.strerror}") from None


class Policy:
    """The rules in force, read from the files given at start-up."""

    def __init__(self, acf: Path | None = None, permissions: Path | None = None) -> None:
        """Read the files now; raise `PolicyError` if one does not parse."""
        self._files = (acf, permissions)
        self.rules = Rules.read(acf, permissions)

    @property
    def access(self) -> AccessConfig:
        """The access security configuration in force."""
        return self.rules.access

    def read_again(self) -> Rules:
        """The files as they are now (not in force yet: see `apply`)."""
        return Rules.read(*self._files)

    def apply(self, rules: Rules) -> None:
        """Put `rules` in force."""
        self.rules = rules
        log.info("access security and permissions re-read")

    def authorize(self, writer: Writer, plan: str, devices: dict[str, str]) -> str | None:
        """The permission group that lets `writer` run `plan` on `devices` (None without a
        permissions file); raise `PermissionRefused` if none does.
        """
        rules = self.rules
        if rules.permissions is None:
            return None
        return rules.permissions.authorize(writer.user, rules.access.user_groups, plan, devices)

    def recheck(self, task: Task) -> str | None:
        """`authorize` the task's submitter again, under the rules now in force."""
        return self.authorize(task.writer, task.name, task.devices)
