"""The permissions file: parsing (errors name file:line) and matching, on the rules the
bluesky queueserver documents for its user-group file.
"""

import textwrap
from pathlib import Path

import pytest

from ioc.service.permissions import (
    PermissionRefused,
    Permissions,
    PermissionsError,
    load_permissions,
    parse_permissions,
)

# The queueserver's documented example: root filters every group; primary may do all
# that root allows; test_user is limited by regular expressions.
QUEUESERVER_EXAMPLE = """\
user_groups:
  root:
    allowed_plans:
      - null              # everything...
    forbidden_plans:
      - ":^_"             # ...but plans whose name starts with '_'
    allowed_devices:
      - null
    forbidden_devices:
      - ":^_"
  primary:
    allowed_plans:
      - ":.*"
    forbidden_plans:
      - null              # nothing forbidden
    allowed_devices:
      - ":.*"
    forbidden_devices:
      - null
  test_user:
    allowed_plans:
      - ":^count"
      - ":scan$"
    forbidden_plans:
      - ":^adaptive_scan$"
      - ":^inner_product"
    allowed_devices:
      - ":^det"
      - ":^motor"
    forbidden_devices:
      - ":^det[3-5]$"
      - ":^motor\\\\d+$"
"""

MEMBERS = {
    "root": frozenset({"admin"}),
    "primary": frozenset({"alice", "both"}),
    "test_user": frozenset({"bob", "both"}),
}


@pytest.fixture
def example() -> Permissions:
    return parse_permissions(QUEUESERVER_EXAMPLE, "perm.yaml")


def refusal(permissions: Permissions, user: str, plan: str, devices: dict[str, str] | None = None) -> str:
    with pytest.raises(PermissionRefused) as refused:
        permissions.authorize(user, MEMBERS, plan, devices or {})
    return str(refused.value)


def test_groups_come_from_the_uags_first_group_of_the_file_wins(example: Permissions) -> None:
    assert example.group_of("alice", MEMBERS) == "primary"
    assert example.group_of("bob", MEMBERS) == "test_user"
    assert example.group_of("both", MEMBERS) == "primary"  # primary comes first in the file
    assert example.group_of("admin", MEMBERS) == "root"
    assert example.group_of("carol", MEMBERS) is None


def test_allowed_regular_expressions(example: Permissions) -> None:
    assert example.authorize("bob", MEMBERS, "count", {"params.detectors.0": "det1"}) == "test_user"
    assert example.authorize("bob", MEMBERS, "grid_scan", {}) == "test_user"  # ":scan$"
    assert refusal(example, "bob", "mv") == "user 'bob' (group test_user) may not run plan 'mv'"


def test_forbidden_wins_over_allowed(example: Permissions) -> None:
    assert "may not run plan 'adaptive_scan'" in refusal(example, "bob", "adaptive_scan")
    assert refusal(example, "bob", "count", {"params.detectors.0": "det4"}) == (
        "user 'bob' (group test_user) may not use device 'det4' (params.detectors.0)"
    )
    assert "may not use device 'motor12' (params.motor)" in refusal(
        example, "bob", "count", {"params.motor": "motor12"}
    )
    example.authorize("bob", MEMBERS, "count", {"params.motor": "motor_x"})  # not motor\d+


def test_root_filters_every_other_group(example: Permissions) -> None:
    assert example.authorize("alice", MEMBERS, "anything", {"params.m": "m1"}) == "primary"
    assert refusal(example, "alice", "_private") == "user 'alice' (group primary) may not run plan '_private'"
    assert "may not use device '_hidden' (params.m)" in refusal(example, "alice", "count", {"params.m": "_hidden"})
    assert "may not run plan '_x'" in refusal(example, "admin", "_x")  # root's own rules


def test_a_user_in_no_group_is_refused_unless_there_is_a_default(example: Permissions) -> None:
    assert "user 'carol' is in no group" in refusal(example, "carol", "count")
    with_default = parse_permissions("user_groups:\n  default:\n    allowed_plans: [count]\n")
    assert with_default.authorize("carol", MEMBERS, "count", {}) == "default"
    with pytest.raises(PermissionRefused, match=r"user 'carol' \(group default\) may not run plan 'mv'"):
        with_default.authorize("carol", MEMBERS, "mv", {})


def test_missing_allowed_list_allows_nothing_and_exact_names_match_exactly() -> None:
    permissions = parse_permissions(textwrap.dedent("""\
        user_groups:
          visitors:
            allowed_plans: [count, scan]
            forbidden_devices: [motor1]
          staff:
            allowed_plans: [null]
            allowed_devices: [null]
            forbidden_plans: []
    """))
    members = {"visitors": frozenset({"bob"}), "staff": frozenset({"alice"})}
    assert permissions.authorize("bob", members, "count", {}) == "visitors"
    for plan in ("mv", "count2", "coun"):
        with pytest.raises(PermissionRefused, match=f"may not run plan '{plan}'"):
            permissions.authorize("bob", members, plan, {})
    with pytest.raises(PermissionRefused, match="may not use device 'det1'"):  # no allowed_devices
        permissions.authorize("bob", members, "count", {"params.detectors.0": "det1"})
    assert permissions.authorize("alice", members, "mv", {"params.motor": "motor1"}) == "staff"


def test_a_device_rule_covers_its_sub_devices() -> None:
    permissions = parse_permissions(textwrap.dedent("""\
        user_groups:
          visitors:
            allowed_plans: [null]
            allowed_devices: [sample_stage, det1]
            forbidden_devices: [sample_stage.x]
    """))
    members = {"visitors": frozenset({"bob"})}
    assert permissions.authorize("bob", members, "mv", {"params.motor": "sample_stage.y"}) == "visitors"
    with pytest.raises(PermissionRefused, match=r"may not use device 'sample_stage.x' \(params.motor\)"):
        permissions.authorize("bob", members, "mv", {"params.motor": "sample_stage.x"})
    with pytest.raises(PermissionRefused, match="may not use device 'sample_stage.x.user_setpoint'"):
        permissions.authorize("bob", members, "mv", {"params.motor": "sample_stage.x.user_setpoint"})
    with pytest.raises(PermissionRefused, match="may not use device 'det10'"):  # det1 is exact
        permissions.authorize("bob", members, "count", {"params.detectors.0": "det10"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("user_groups:\n  a: [\n", r"perm.yaml:3: not valid YAML"),
        ("user_groups:\n  a:\n    allowed_plans: [x]\n    allowd_devices: [y]\n",
         r"perm.yaml:4: group 'a': unknown key 'allowd_devices'; expected one of allowed_plans"),
        ("user_groups:\n  a:\n    allowed_plans:\n      - x\n      - ':[unclosed'\n",
         r"perm.yaml:5: group 'a': allowed_plans: bad regular expression '\[unclosed'"),
        ("groups:\n  a: {}\n", r"perm.yaml:1: unknown key 'groups'; expected 'user_groups'"),
        ("user_groups:\n  a:\n    allowed_plans: count\n", r"perm.yaml:3: group 'a': allowed_plans must be a list"),
        ("user_groups:\n  a:\n    allowed_plans: [x, null]\n",
         r"perm.yaml:3: group 'a': allowed_plans: null may only be the first element"),
        ("user_groups:\n  a: {}\n  a: {}\n", r"perm.yaml:3: group 'a' is defined twice"),
        ("", r"perm.yaml:1: the file must be a mapping"),
        ("user_groups:\n  a:\n    allowed_plans: [{x: 1}]\n",
         r"perm.yaml:3: group 'a': allowed_plans: expected a name or ':<regular expression>'"),
    ],
)
def test_a_bad_file_is_refused_naming_file_and_line(text: str, expected: str) -> None:
    with pytest.raises(PermissionsError, match=f"^{expected}"):
        parse_permissions(text, "perm.yaml")


def test_load_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PermissionsError, match="nowhere.yaml: cannot read"):
        load_permissions(tmp_path / "nowhere.yaml")


def test_the_shipped_example_parses() -> None:
    shipped = Path(__file__).resolve().parents[2] / "db" / "permissions.yaml"
    permissions = load_permissions(shipped)
    assert {"root", "staff", "visitors"} <= set(permissions.groups)
