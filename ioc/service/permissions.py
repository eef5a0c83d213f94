"""Per-group plan and device permissions: the bluesky queueserver's user-group file.

The file (YAML)::

    user_groups:
      root:                  # optional: filters every other group
        allowed_plans: [null]          # null first: everything
        forbidden_plans: [":^_"]       # ':' first: a regular expression (re.search)
        allowed_devices: [null]
        forbidden_devices: [":^_"]
      staff:                 # a UAG of the ACF
        allowed_plans: [null]
        allowed_devices: [null]
      visitors:
        allowed_plans: [count, scan, ":^rel_"]
        allowed_devices: [det1, ":^sim_"]
        forbidden_devices: [motor1]

A name is permitted to a group when its allowed list matches it and its forbidden list
does not (forbidden wins; a missing allowed list allows nothing; a missing forbidden list
forbids nothing). A group other than `root` also needs `root` to permit the name. A
device rule matches a device name or any name it is a part of (`motor1` also matches
`motor1.velocity`). Which group a user is in comes from the ACF's UAGs: the first group
of this file whose UAG lists the user, else `default` if the file defines it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import RequestError

ROOT = "root"  # the group whose rules filter every other group
DEFAULT = "default"  # the group of a user whom no other group lists
LISTS = ("allowed_plans", "forbidden_plans", "allowed_devices", "forbidden_devices")


class PermissionsError(ValueError):
    """A permissions file that cannot be used; the message is `<file>:<line>: <reason>`."""


class PermissionRefused(RequestError):
    """A request its user may not make; the message names the user, group and rule."""


@dataclass(frozen=True)
class Names:
    """One allowed or forbidden list: exact names and regular expressions, or everything."""

    everything: bool = False
    exact: frozenset[str] = frozenset()
    patterns: tuple[re.Pattern[str], ...] = ()

    def matches(self, name: str) -> bool:
        """Whether the list names `name`."""
        return (self.everything or name in self.exact
                or any(pattern.search(name) for pattern in self.patterns))


@dataclass(frozen=True)
class GroupRules:
    """The four lists of one group (a missing one is `Names()`: it names nothing)."""

    allowed_plans: Names = Names()
    forbidden_plans: Names = Names()
    allowed_devices: Names = Names()
    forbidden_devices: Names = Names()

    def permits_plan(self, name: str) -> bool:
        """Whether the group may run plan `name`."""
        return self.allowed_plans.matches(name) and not self.forbidden_plans.matches(name)

    def permits_device(self, name: str) -> bool:
        """Whether the group may use device `name` (a dotted sub-device name: a rule on it
        or on any device it is part of applies).
        """
        names = list(_with_parents(name))
        allowed = any(self.allowed_devices.matches(n) for n in names)
        return allowed and not any(self.forbidden_devices.matches(n) for n in names)


def _with_parents(name: str) -> Iterator[str]:
    """`a.b.c`, `a.b`, `a`."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        yield ".".join(parts[:end])


@dataclass(frozen=True)
class Permissions:
    """The groups of a permissions file, in file order."""

    groups: Mapping[str, GroupRules] = field(default_factory=dict)

    def group_of(self, user: str, members: Mapping[str, frozenset[str]]) -> str | None:
        """The group of `user`, given each UAG's `members`: the first group of the file
        whose UAG lists the user, else `default` if defined, else None.
        """
        for group in self.groups:
            if user in members.get(group, ()):
                return group
        return DEFAULT if DEFAULT in self.groups else None

    def authorize(
        self, user: str, members: Mapping[str, frozenset[str]], plan: str,
        devices: Mapping[str, str],
    ) -> str:
        """The group that allows `user` to run `plan` on `devices` (name by path such as
        `params.motor`); raise `PermissionRefused` naming the rule that does not.
        """
        group = self.group_of(user, members)
        if group is None:
            raise PermissionRefused(
                f"user {user!r} is in no group of the permissions file, and it has no"
                f" {DEFAULT!r} group: every request of theirs is refused"
            )
        rules = [self.groups[group]]
        if group != ROOT and ROOT in self.groups:
            rules.append(self.groups[ROOT])
        if not all(rule.permits_plan(plan) for rule in rules):
            raise PermissionRefused(f"user {user!r} (group {group}) may not run plan {plan!r}")
        for path, device in devices.items():
            if not all(rule.permits_device(device) for rule in rules):
                raise PermissionRefused(
                    f"user {user!r} (group {group}) may not use device {device!r} ({path})"
                )
        return group


def load_permissions(path: Path) -> Permissions:
    """Read and parse the permissions file at `path`."""
    try:
        text = path.read_text()
    except OSError as error:
        raise PermissionsError(f"{path}: cannot read: {error.strerror or error}") from None
    return parse_permissions(text, str(path))


def parse_permissions(text: str, source: str = "<permissions>") -> Permissions:
    """Parse the permissions file `text`; errors name `source` and the line."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(error, "problem", None) or str(error)
        raise PermissionsError(f"{source}:{line}: not valid YAML: {problem}") from None
    return _Parser(source).file(root)


class _Parser:
    """Builds `Permissions` from the YAML node tree, naming the line of every problem."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, node: yaml.Node | None, reason: str) -> PermissionsError:
        line = node.start_mark.line + 1 if node is not None else 1
        return PermissionsError(f"{self.source}:{line}: {reason}")

    def mapping(self, node: yaml.Node | None, what: str) -> list[tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{what} must be a mapping")
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise self.error(key, f"{what}: keys must be names")
        return node.value

    def file(self, root: yaml.Node | None) -> Permissions:
        entries = self.mapping(root, "the file")
        groups: dict[str, GroupRules] = {}
        for key, value in entries:
            if key.value != "user_groups":
                raise self.error(key, f"unknown key {key.value!r}; expected 'user_groups'")
            for name, body in self.mapping(value, "user_groups"):
                if name.value in groups:
                    raise self.error(name, f"group {name.value!r} is defined twice")
                groups[name.value] = self.group(name.value, body)
        if root is not None and not any(key.value == "user_groups" for key, _ in entries):
            raise self.error(root, "missing 'user_groups'")
        return Permissions(groups)

    def group(self, name: str, node: yaml.Node) -> GroupRules:
        lists: dict[str, Names] = {}
        for key, value in self.mapping(node, f"group {name!r}"):
            if key.value not in LISTS:
                raise self.error(key, f"group {name!r}: unknown key {key.value!r}; expected one of {', '.join(LISTS)}")
            lists[key.value] = self.names(f"group {name!r}: {key.value}", value)
        return GroupRules(**lists)

    def names(self, what: str, node: yaml.Node) -> Names:
        if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
            return Names()  # an empty entry: names nothing
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, f"{what} must be a list")
        exact: set[str] = set()
        patterns: list[re.Pattern[str]] = []
        for index, item in enumerate(node.value):
            if not isinstance(item, yaml.ScalarNode):
                raise self.error(item, f"{what}: expected a name or ':<regular expression>'")
            if item.tag.endswith(":null"):
                if index:
                    raise self.error(item, f"{what}: null may only be the first element")
                continue
            text = str(item.value)
            if text.startswith(":"):
                try:
                    patterns.append(re.compile(text[1:]))
                except re.error as error:
                    raise self.error(item, f"{what}: bad regular expression {text[1:]!r}: {error}") from None
            else:
                exact.add(text)
        first_is_null = bool(node.value) and node.value[0].tag.endswith(":null")
        everything = first_is_null and what.endswith(("allowed_plans", "allowed_devices"))
        return Names(everything, frozenset(exact), tuple(patterns))
