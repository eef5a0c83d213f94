"""Tests of the ACF parser and evaluator."""

from pathlib import Path

import pytest

from ioc.access import ALLOW_ALL, Access, AcfError, load_acf, parse_acf

SHIPPED = Path(__file__).parents[2] / "db" / "access.acf"
RW = Access.READ | Access.WRITE

EXAMPLE = """\
UAG(staff) { alice }
UAG(visitors) { bob }
HAG(controlroom) { localhost, 127.0.0.1, opi1 }
ASG(DEFAULT) {
    RULE(1, READ)
}
ASG(CONTROL) {
    RULE(1, READ)
    RULE(1, WRITE) { UAG(staff, visitors) HAG(controlroom) }
}
"""


def test_example() -> None:
    config = parse_acf(EXAMPLE)
    assert config.rights("CONTROL", "localhost", "alice") == RW
    assert config.rights("CONTROL", "127.0.0.1", "bob") == RW
    assert config.rights("CONTROL", "elsewhere", "alice") == Access.READ
    assert config.rights("CONTROL", "localhost", "carol") == Access.READ
    for user in ("alice", "carol"):
        assert config.rights("DEFAULT", "localhost", user) == Access.READ


def test_write_implies_read_and_rules_unite() -> None:
    config = parse_acf("""
        UAG(a) { alice }
        UAG(b) { bob }
        ASG(G) {
            RULE(1, WRITE) { UAG(a) }
            RULE(1, READ) { UAG(b) }
        }
        ASG(H) { RULE(1, READ) RULE(1, WRITE) { UAG(b) } }
    """)
    assert config.rights("G", "h", "alice") == RW
    assert config.rights("G", "h", "bob") == Access.READ
    assert config.rights("G", "h", "carol") == Access.NONE
    assert config.rights("H", "h", "bob") == RW
    assert config.rights("H", "h", "carol") == Access.READ


def test_rule_without_conditions_and_none() -> None:
    config = parse_acf("ASG(G) { RULE(1, WRITE) } ASG(N) { RULE(1, NONE) } ASG(E) { }")
    assert config.rights("G", "any", "anyone") == RW
    assert config.rights("N", "any", "anyone") == Access.NONE
    assert config.rights("E", "any", "anyone") == Access.NONE


def test_uag_only_hag_only_and_several_groups() -> None:
    config = parse_acf("""
        UAG(a) { alice } UAG(b) { bob } HAG(h) { opi1 } HAG(k) { opi2 }
        ASG(USERS) { RULE(1, WRITE) { UAG(a, b) } }
        ASG(HOSTS) { RULE(1, WRITE) { HAG(h) HAG(k) } }
    """)
    assert config.rights("USERS", "anywhere", "bob") == RW
    assert config.rights("USERS", "opi1", "carol") == Access.NONE
    assert config.rights("HOSTS", "opi2", "carol") == RW
    assert config.rights("HOSTS", "opi3", "alice") == Access.NONE


def test_hosts_case_insensitive_users_not() -> None:
    config = parse_acf("UAG(u) { Alice } HAG(h) { OPI1.Example.org }"
                       "ASG(G) { RULE(1, WRITE) { UAG(u) HAG(h) } }")
    assert config.rights("G", "opi1.example.ORG", "Alice") == RW
    assert config.rights("G", "opi1.example.org", "alice") == Access.NONE


def test_comments_quotes_and_layout() -> None:
    config = parse_acf("""# a comment
        UAG ( "ops team" )  # trailing comment, { unbalanced } in a comment
        {
          "alice smith"
          ,
          bob
        }
        ASG("CONTROL") { RULE ( 1 , WRITE , TRAPWRITE ) { UAG("ops team") } }
        ASG(OTHER) { RULE(1, WRITE, NOTRAPWRITE) }
    """)
    assert config.rights("CONTROL", "h", "alice smith") == RW
    assert config.rights("CONTROL", "h", "bob") == RW
    assert config.rights("CONTROL", "h", "carol") == Access.NONE
    assert config.rights("OTHER", "h", "carol") == RW


def test_calc_rules_never_match_inp_ignored() -> None:
    config = parse_acf("""
        ASG(G) {
            INPA(SOME:PV)
            INPB("OTHER:PV")
            RULE(1, READ)
            RULE(1, WRITE) { CALC("A=1") }
        }
    """)
    assert config.rights("G", "h", "u") == Access.READ


def test_levels() -> None:
    config = parse_acf("ASG(G) { RULE(0, WRITE) RULE(2, READ) } ASG(Z) { RULE(0, WRITE) }")
    assert config.rights("G", "h", "u") == Access.READ
    assert config.rights("Z", "h", "u") == Access.NONE


def test_missing_group_falls_back_to_default() -> None:
    config = parse_acf(EXAMPLE)
    assert config.rights("NOSUCH", "localhost", "alice") == Access.READ
    without_default = parse_acf("ASG(CONTROL) { RULE(1, WRITE) }")
    assert without_default.rights("NOSUCH", "localhost", "alice") == Access.NONE
    assert parse_acf("").rights("DEFAULT", "h", "u") == Access.NONE


@pytest.mark.parametrize(("text", "line", "what"), [
    ("ASG(A) {\n RULE(1, READ)\n", 1, "unbalanced braces: '{' is never closed"),
    ("UAG(x) { a }\nASG(A) {\n RULE(1, WRITE) {\n UAG(x)", 3, "never closed"),
    ("ASG(A) {\n RULE(1, READ)\n}\n}", 4, "unbalanced braces: unexpected '}'"),
    ("UAG(u) { a }\nFOO(x) { }", 2, "unknown keyword 'FOO'"),
    ("ASG(A) {\n\n  READ(1)\n}", 3, "unknown keyword 'READ' in ASG"),
    ("UAG(u) { a }\nASG(A) {\n RULE(1, WRITE) {\n  USER(u)\n }\n}", 4,
     "unknown keyword 'USER' in RULE"),
    ("ASG(A) {\n RULE(x, READ)\n}", 2, "bad RULE level 'x'"),
    ("ASG(A) {\n RULE(-1, READ)\n}", 2, "bad RULE level '-1'"),
    ("ASG(A) {\n\n RULE(1, WRIET)\n}", 3, "bad RULE access 'WRIET'"),
    ("ASG(A) {\n RULE(1, WRITE, TRAP)\n}", 2, "bad RULE option 'TRAP'"),
    ("ASG(A) {\n RULE(1)\n}", 2, "wrong number of arguments to RULE"),
    ("UAG(u) { a }\nASG(A) {\n RULE(1, WRITE) { UAG(u, v) }\n}", 3, "undefined UAG 'v'"),
    ("ASG(A) {\n RULE(1, WRITE) {\n  HAG(h)\n }\n}", 3, "undefined HAG 'h'"),
    ("ASG(A) {\n RULE(1, WRITE) { UAG(u) }\n}\nUAG(u) { a }", 2, "undefined UAG 'u'"),
    ("ASG(A) { }\nASG(B) { }\nASG(A) { }", 3, "duplicate ASG 'A'"),
    ("UAG(u) { a }\nUAG(u) { b }", 2, "duplicate UAG 'u'"),
    ("HAG(u) { a b }", 1, "expected ',', got 'b'"),
    ("UAG(u) { , }", 1, "expected a name, got ','"),
    ("ASG(A) {\n RULE(1, READ\n}", 3, "expected ')', got '}'"),
    ("ASG(A) {\n RULE(1,", 2, "unexpected end of file"),
    ('UAG(u) {\n "alice }', 2, "unterminated quoted string"),
])
def test_errors(text: str, line: int, what: str) -> None:
    with pytest.raises(AcfError) as info:
        parse_acf(text, "test.acf")
    assert str(info.value).startswith(f"test.acf:{line}: ")
    assert what in str(info.value)


def test_load_acf_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.acf"
    path.write_text("# ok\nASG(A) {\n RULE(1, MAYBE)\n}\n")
    with pytest.raises(AcfError, match=rf"^{path}:3: bad RULE access 'MAYBE'$"):
        load_acf(path)


def test_shipped_acf() -> None:
    config = load_acf(SHIPPED)
    assert config.rights("DEFAULT", "localhost", "alice") == Access.READ
    assert config.rights("CONTROL", "localhost", "alice") == RW
    assert config.rights("CONTROL", "127.0.0.1", "bob") == RW
    assert config.rights("CONTROL", "opi9", "alice") == Access.READ
    assert config.rights("CONTROL", "localhost", "carol") == Access.READ
    assert config.rights("QUEUE", "localhost", "alice") == Access.READ  # falls back to DEFAULT


def test_allow_all() -> None:
    for group in ("DEFAULT", "CONTROL", "ANYTHING"):
        assert ALLOW_ALL.rights(group, "anywhere", "anyone") == RW


def test_the_uags_are_kept_as_the_permission_groups() -> None:
    config = load_acf(SHIPPED)
    assert config.user_groups == {"staff": frozenset({"alice"}), "visitors": frozenset({"bob"})}
