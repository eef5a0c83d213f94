"""EPICS access security configuration files (ACF): parsing and evaluation.

Syntax as in the EPICS Application Developer's Guide, chapter "Access Security"::

    UAG(name) { user, ... }
    HAG(name) { host, ... }
    ASG(name) {
        INPA(pv) ...  CALC("expr")
        RULE(level, NONE|READ|WRITE[, TRAPWRITE|NOTRAPWRITE]) [{ UAG(a, b) HAG(c) CALC("expr") }]
    }

Semantics (as EPICS, within the limits of an IOC without records):

- Rights in an ASG are the union of the rights of its matching rules; WRITE implies READ.
- A rule matches when every condition kind it lists matches: the user is in any of its
  UAGs, AND the host is in any of its HAGs. Host names compare case-insensitively.
- All PVs of this IOC are level-1 fields, so only rules of level >= 1 count.
- There are no records to read INP links from: INP lines are parsed and ignored, and
  a rule with a CALC condition never matches.
- A group the file does not define uses DEFAULT; without DEFAULT: no access.
- UAGs and HAGs must be defined before a rule names them; no group may be defined twice.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_GROUP = "DEFAULT"
FIELD_LEVEL = 1  # the access security level of every PV of this IOC

_TOKEN = re.compile(
    r'(?P<newline>\n)|[^\S\n]+|#[^\n]*|(?P<punct>[(){},])|"(?P<quoted>(?:\\.|[^"\\\n])*)"'
    r'|(?P<bare>[^\s(){},"#]+)|(?P<bad>")'
)


class Access(enum.IntFlag):
    """Access rights to a PV."""

    NONE = 0
    READ = 1
    WRITE = 2


_ACCESS = {"NONE": Access.NONE, "READ": Access.READ, "WRITE": Access.READ | Access.WRITE}


class AcfError(ValueError):
    """An invalid ACF; the message is ``<file>:<line>: <what is wrong>``."""


@dataclass(frozen=True)
class Rule:
    """One RULE of an ASG; `users`/`hosts` are None when the rule has no such condition."""

    level: int
    access: Access
    users: frozenset[str] | None = None
    hosts: frozenset[str] | None = None  # lower case
    calc: str | None = None

    def matches(self, host: str, user: str) -> bool:
        """Whether the rule grants its access to `user` on `host` for a level-1 PV."""
        return (self.level >= FIELD_LEVEL and self.calc is None
                and (self.users is None or user in self.users)
                and (self.hosts is None or host.lower() in self.hosts))


@dataclass(frozen=True)
class AccessConfig:
    """The access security groups (ASGs) of an ACF, each with its rules, and the members
    of each user access group (UAG), which are also the permission groups.
    """

    groups: Mapping[str, tuple[Rule, ...]]
    user_groups: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def rights(self, group: str, host: str, user: str) -> Access:
        """The rights of `user` on `host` to a PV of ASG `group` (WRITE includes READ)."""
        granted = Access.NONE
        for rule in self.groups.get(group, self.groups.get(DEFAULT_GROUP, ())):
            if rule.matches(host, user):
                granted |= rule.access
        return granted


@dataclass(frozen=True)
class _Token:
    text: str
    line: int
    kind: str  # "punct", "bare" or "quoted"

    def is_punct(self, char: str) -> bool:
        return self.kind == "punct" and self.text == char

    @property
    def keyword(self) -> str:
        return self.text if self.kind == "bare" else ""


def _tokenize(text: str, source: str) -> Iterator[_Token]:
    """Punctuation, bare names and quoted strings (unescaped) of `text`, without comments."""
    line = 1
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind == "newline":
            line += 1
        elif kind == "bad":
            raise AcfError(f"{source}:{line}: unterminated quoted string")
        elif kind is not None:
            token = re.sub(r"\\(.)", r"\1", match[kind]) if kind == "quoted" else match[kind]
            yield _Token(token, line, kind)


class _Parser:
    """Recursive-descent parser over the tokens of one ACF."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.tokens = list(_tokenize(text, source))
        self.pos = 0
        self.groups: dict[str, dict[str, frozenset[str]]] = {"UAG": {}, "HAG": {}}
        self.asgs: dict[str, tuple[Rule, ...]] = {}

    def error(self, line: int, what: str) -> AcfError:
        return AcfError(f"{self.source}:{line}: {what}")

    def is_next(self, char: str) -> bool:
        return self.pos < len(self.tokens) and self.tokens[self.pos].is_punct(char)

    def next(self, name: bool = False) -> _Token:
        """The next token, which must be a name if `name`."""
        if self.pos == len(self.tokens):
            raise self.error(self.tokens[-1].line, "unexpected end of file")
        self.pos += 1
        token = self.tokens[self.pos - 1]
        if name and token.kind == "punct":
            raise self.error(token.line, f"expected a name, got '{token.text}'")
        return token

    def expect(self, char: str) -> None:
        token = self.next()
        if not token.is_punct(char):
            raise self.error(token.line, f"expected '{char}', got '{token.text}'")

    def args(self, keyword: _Token, low: int = 1, high: int = 1) -> list[_Token]:
        """``( name {, name} )`` with `low` to `high` names (no limit if `high` is 0)."""
        self.expect("(")
        args = [self.next(name=True)]
        while self.is_next(","):
            self.pos += 1
            args.append(self.next(name=True))
        self.expect(")")
        if not low <= len(args) <= (high or len(args)):
            raise self.error(keyword.line, f"wrong number of arguments to {keyword.text}")
        return args

    def block(self) -> Iterator[_Token]:
        """The first token of each item of an optional ``{ item ... }`` (parsed by the caller)."""
        if not self.is_next("{"):
            return
        opening = self.next()
        while self.pos < len(self.tokens) and not self.is_next("}"):
            yield self.next()
        if self.pos == len(self.tokens):
            raise self.error(opening.line, "unbalanced braces: '{' is never closed")
        self.pos += 1

    def members(self, lower: bool) -> frozenset[str]:
        """The optional ``{ name, ... }`` body of a UAG or HAG, lower-cased if `lower`."""
        found: list[str] = []
        for token in self.block():
            if token.kind == "punct":
                raise self.error(token.line, f"expected a name, got '{token.text}'")
            found.append(token.text.lower() if lower else token.text)
            if not self.is_next("}"):
                self.expect(",")
        return frozenset(found)

    def parse(self) -> AccessConfig:
        """The whole file: UAG, HAG and ASG definitions."""
        while self.pos < len(self.tokens):
            token = self.next()
            if token.is_punct("}"):
                raise self.error(token.line, "unbalanced braces: unexpected '}'")
            if token.keyword not in ("UAG", "HAG", "ASG"):
                raise self.error(token.line, f"unknown keyword '{token.text}'")
            (name,) = self.args(token)
            if name.text in (self.asgs if token.text == "ASG" else self.groups[token.text]):
                raise self.error(name.line, f"duplicate {token.text} '{name.text}'")
            if token.text == "ASG":
                self.asgs[name.text] = self.asg()
            else:  # host names compare case-insensitively
                self.groups[token.text][name.text] = self.members(lower=token.text == "HAG")
        return AccessConfig(self.asgs, self.groups["UAG"])

    def asg(self) -> tuple[Rule, ...]:
        """The optional body of an ASG; INP and CALC lines are checked and dropped."""
        rules: list[Rule] = []
        for token in self.block():
            if token.keyword == "RULE":
                rules.append(self.rule(token))
            elif token.keyword == "CALC" or re.fullmatch("INP[A-U]", token.keyword):
                self.args(token)
            else:
                raise self.error(token.line, f"unknown keyword '{token.text}' in ASG")
        return tuple(rules)

    def rule(self, keyword: _Token) -> Rule:
        """``RULE(level, access[, TRAPWRITE|NOTRAPWRITE])`` and its optional conditions."""
        level, access, *option = self.args(keyword, 2, 3)
        if not (level.text.isascii() and level.text.isdigit()):
            raise self.error(level.line, f"bad RULE level '{level.text}'")
        if access.text not in _ACCESS:
            raise self.error(access.line, f"bad RULE access '{access.text}'")
        if option and option[0].text not in ("TRAPWRITE", "NOTRAPWRITE"):
            raise self.error(option[0].line, f"bad RULE option '{option[0].text}'")
        members: dict[str, frozenset[str]] = {}
        calc: str | None = None
        for token in self.block():
            if token.keyword == "CALC":
                calc = self.args(token)[0].text
            elif token.keyword in self.groups:
                groups = self.groups[token.keyword]
                for name in self.args(token, high=0):
                    if name.text not in groups:
                        raise self.error(name.line, f"undefined {token.text} '{name.text}'")
                    members[token.text] = members.get(token.text, frozenset()) | groups[name.text]
            else:
                raise self.error(token.line, f"unknown keyword '{token.text}' in RULE")
        return Rule(int(level.text), _ACCESS[access.text], members.get("UAG"),
                    members.get("HAG"), calc)


def parse_acf(text: str, source: str = "<acf>") -> AccessConfig:
    """Parse the ACF `text`; errors name `source` and the line."""
    return _Parser(text, source).parse()


def load_acf(path: Path) -> AccessConfig:
    """Read and parse the ACF at `path`."""
    return parse_acf(path.read_text(), str(path))


#: What the IOC uses without an ACF: READ and WRITE for everyone in every group.
ALLOW_ALL = AccessConfig({DEFAULT_GROUP: (Rule(level=FIELD_LEVEL, access=_ACCESS["WRITE"]),)})
