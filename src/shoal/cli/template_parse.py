"""Lexer and parser for the subset of Go text/template that docker's `--format` uses.

Parsing is separate from execution because docker reports the two kinds of error differently
(inspect exits 64 on a parse error, 1 on an execution error) and because table headers execute
the same parsed template with different functions. Node `str()` matches Go's Node.String(),
which appears verbatim in execution error messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

KEYWORDS = {"if", "else", "end", "range", "with", "break", "continue", "define", "template", "block"}
_SPACE = " \t\r\n"
_NUMBER = re.compile(
    r"[+-]?(0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|(\d[\d_]*)?\.?\d*([eE][+-]?\d+)?)"
)
_IDENT = re.compile(r"[^\W\d]\w*|_\w*")
_ALNUM = re.compile(r"\w*")


class TemplateParseError(Exception):
    """A syntax error, already formatted like Go: `template: :LINE: message`."""


# ---------------------------------------------------------------------------------------------
# Nodes


@dataclass
class Node:
    pos: int


@dataclass
class TextNode(Node):
    text: str


@dataclass
class FieldNode(Node):
    names: list[str]

    def __str__(self) -> str:
        return "".join("." + n for n in self.names)


@dataclass
class VariableNode(Node):
    names: list[str]  # names[0] is "$" or "$var"; the rest are field names

    def __str__(self) -> str:
        return ".".join(self.names)


@dataclass
class DotNode(Node):
    def __str__(self) -> str:
        return "."


@dataclass
class NilNode(Node):
    def __str__(self) -> str:
        return "nil"


@dataclass
class IdentifierNode(Node):
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass
class BoolNode(Node):
    value: bool

    def __str__(self) -> str:
        return "true" if self.value else "false"


@dataclass
class NumberNode(Node):
    text: str
    value: int | float

    def __str__(self) -> str:
        return self.text


@dataclass
class StringNode(Node):
    quoted: str
    value: str

    def __str__(self) -> str:
        return self.quoted


@dataclass
class CommandNode(Node):
    args: list[Node] = field(default_factory=list)

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, PipeNode) else str(a) for a in self.args)


@dataclass
class PipeNode(Node):
    decls: list[str] = field(default_factory=list)
    is_assign: bool = False
    cmds: list[CommandNode] = field(default_factory=list)

    def __str__(self) -> str:
        text = " | ".join(str(c) for c in self.cmds)
        if self.decls:
            op = " = " if self.is_assign else " := "
            text = ", ".join(self.decls) + op + text
        return text


@dataclass
class ChainNode(Node):
    node: Node
    names: list[str]

    def __str__(self) -> str:
        inner = f"({self.node})" if isinstance(self.node, PipeNode) else str(self.node)
        return inner + "".join("." + n for n in self.names)


@dataclass
class ActionNode(Node):
    pipe: PipeNode


@dataclass
class BranchNode(Node):
    kind: str  # "if", "range" or "with"
    pipe: PipeNode
    body: list[Node]
    else_body: list[Node] | None


@dataclass
class LoopControlNode(Node):
    kind: str  # "break" or "continue"


# ---------------------------------------------------------------------------------------------
# Lexer


@dataclass
class Token:
    kind: str  # text, left, right, space, field, dot, var, ident, keyword, string, number, ...
    value: str
    pos: int


class _Lexer:
    """Splits a template into text and action tokens, honouring `{{-`/`-}}` trim markers."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[Token] = []

    def error(self, pos: int, msg: str) -> TemplateParseError:
        line = self.text.count("\n", 0, pos) + 1
        return TemplateParseError(f"template: :{line}: {msg}")

    def run(self) -> list[Token]:
        pos = 0
        while pos < len(self.text):
            start = self.text.find("{{", pos)
            if start < 0:
                self._text(pos, len(self.text))
                break
            trim_left = self.text.startswith("{{-", start) and start + 3 < len(self.text) \
                and self.text[start + 3] in _SPACE
            self._text(pos, start, rstrip=trim_left)
            pos = self._action(start, start + (4 if trim_left else 2))
        if self.tokens and self.tokens[-1].kind == "trim":
            self.tokens.pop()
        self.tokens.append(Token("eof", "", len(self.text)))
        return self.tokens

    def _text(self, start: int, end: int, rstrip: bool = False) -> None:
        chunk = self.text[start:end]
        if rstrip:
            chunk = chunk.rstrip(_SPACE)
        if self.tokens and self.tokens[-1].kind == "trim":
            self.tokens.pop()
            chunk = chunk.lstrip(_SPACE)
        if chunk:
            self.tokens.append(Token("text", chunk, start))

    def _close_at(self, pos: int) -> tuple[int, bool] | None:
        """If an action closes at `pos`, return (end position, trim-right)."""
        if self.text.startswith("}}", pos):
            return pos + 2, False
        if self.text[pos] in _SPACE and self.text.startswith("-}}", pos + 1):
            return pos + 4, True
        return None

    def _action(self, start: int, pos: int) -> int:
        if self.text.startswith("/*", pos):
            return self._comment(pos)
        self.tokens.append(Token("left", "{{", start))
        while True:
            if pos >= len(self.text):
                raise self.error(start, "unclosed action")
            closed = self._close_at(pos)
            if closed:
                end, trim = closed
                self.tokens.append(Token("right", "}}", pos))
                if trim:
                    self.tokens.append(Token("trim", "", end))
                return end
            pos = self._inside(pos, start)

    def _comment(self, pos: int) -> int:
        end = self.text.find("*/", pos + 2)
        if end < 0:
            raise self.error(pos, "unclosed comment")
        end += 2
        closed = self._close_at(end) if end < len(self.text) else None
        if not closed:
            raise self.error(pos, "comment ends before closing delimiter")
        if closed[1]:
            self.tokens.append(Token("trim", "", closed[0]))
        return closed[0]

    def _inside(self, pos: int, start: int) -> int:
        """Lex one token inside an action; return the position after it."""
        text = self.text
        if text[pos] in _SPACE:
            end = pos
            while end < len(text) and text[end] in _SPACE and not self._close_at(end):
                end += 1
            self.tokens.append(Token("space", text[pos:end], pos))
            return end
        return self._inside_nonspace(pos, start)

    def _inside_nonspace(self, pos: int, start: int) -> int:
        text, ch = self.text, self.text[pos]
        simple = {"|": "pipe", "(": "lparen", ")": "rparen", ",": "comma"}
        if ch in simple:
            self.tokens.append(Token(simple[ch], ch, pos))
            return pos + 1
        if text.startswith(":=", pos):
            self.tokens.append(Token("declare", ":=", pos))
            return pos + 2
        if ch == "=":
            self.tokens.append(Token("assign", "=", pos))
            return pos + 1
        if ch in "\"`'":
            return self._quoted(pos, ch)
        if ch == "$":
            name = "$" + _ALNUM.match(text, pos + 1).group(0)
            self.tokens.append(Token("var", name, pos))
            return pos + len(name)
        if ch == "." and not text[pos + 1:pos + 2].isdigit():
            name = _ALNUM.match(text, pos + 1).group(0)
            self.tokens.append(Token("field" if name else "dot", "." + name, pos))
            return pos + 1 + len(name)
        if ch.isdigit() or ch in "+-.":
            return self._number(pos)
        m = _IDENT.match(text, pos)
        if m:
            word = m.group(0)
            kind = "keyword" if word in KEYWORDS else {"true": "bool", "false": "bool", "nil": "nil"}.get(word, "ident")
            self.tokens.append(Token(kind, word, pos))
            return m.end()
        raise self.error(pos, f"bad character U+{ord(ch):04X} '{ch}'")

    def _quoted(self, pos: int, quote: str) -> int:
        if quote == "`":
            end = self.text.find("`", pos + 1)
            if end < 0:
                raise self.error(pos, "unterminated raw quoted string")
            self.tokens.append(Token("rawstring", self.text[pos:end + 1], pos))
            return end + 1
        i = pos + 1
        while i < len(self.text) and self.text[i] != quote:
            if self.text[i] == "\n":
                break
            i += 2 if self.text[i] == "\\" else 1
        if i >= len(self.text) or self.text[i] != quote:
            what = "quoted string" if quote == '"' else "character constant"
            raise self.error(pos, f"unterminated {what}")
        self.tokens.append(Token("string" if quote == '"' else "char", self.text[pos:i + 1], pos))
        return i + 1

    def _number(self, pos: int) -> int:
        m = _NUMBER.match(self.text, pos)
        end = m.end() if m else pos
        if end == pos or self.text[pos:end] in ("+", "-", ".", "+.", "-."):
            raise self.error(pos, f"bad number syntax: {self.text[pos:pos + 1]!r}")
        self.tokens.append(Token("number", self.text[pos:end], pos))
        return end


# ---------------------------------------------------------------------------------------------
# Parser

_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
            "\\": "\\", "'": "'", '"': '"'}
_ESCAPE_RE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)")


def unquote(quoted: str) -> str:
    """Go's strconv.Unquote for "...", `...` and '...' literals."""
    if quoted[0] == "`":
        return quoted[1:-1]

    def repl(m: re.Match[str]) -> str:
        esc = m.group(1)
        if esc[0] in "xuU":
            return chr(int(esc[1:], 16))
        if esc[0].isdigit():
            return chr(int(esc, 8))
        if esc in _ESCAPES:
            return _ESCAPES[esc]
        raise ValueError(f"invalid escape \\{esc}")

    return _ESCAPE_RE.sub(repl, quoted[1:-1])


def parse_number(text: str) -> int | float:
    clean = text.replace("_", "")
    try:
        return int(clean, 0)
    except ValueError:
        return float(clean)


class Parser:
    """Recursive-descent parser over the token stream; checks function names at parse time."""

    def __init__(self, text: str, func_names: Iterable[str]) -> None:
        self.text = text
        self.funcs = set(func_names)
        self.tokens = _Lexer(text).run()
        self.i = 0
        self.vars: list[str] = ["$"]
        self.range_depth = 0

    def error(self, msg: str, pos: int | None = None) -> TemplateParseError:
        pos = self.tokens[self.i].pos if pos is None else pos
        line = self.text.count("\n", 0, min(pos, len(self.text))) + 1
        return TemplateParseError(f"template: :{line}: {msg}")

    def peek(self, skip_space: bool = True) -> Token:
        j = self.i
        while skip_space and self.tokens[j].kind == "space":
            j += 1
        return self.tokens[j]

    def next(self, skip_space: bool = True) -> Token:
        while skip_space and self.tokens[self.i].kind == "space":
            self.i += 1
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def parse(self) -> list[Node]:
        nodes, stop = self.parse_list()
        if stop is not None:
            raise self.error(f"unexpected {{{{{stop}}}}}", self.tokens[self.i - 1].pos)
        return nodes

    def parse_list(self) -> tuple[list[Node], str | None]:
        """Parse until EOF or an {{end}}/{{else}}; return the nodes and the keyword that stopped."""
        nodes: list[Node] = []
        while True:
            tok = self.next(skip_space=False)
            if tok.kind == "eof":
                self.i -= 1
                return nodes, None
            if tok.kind == "text":
                nodes.append(TextNode(tok.pos, tok.value))
                continue
            stop = self.parse_action(tok, nodes)
            if stop:
                return nodes, stop

    def parse_action(self, left: Token, nodes: list[Node]) -> str | None:
        tok = self.peek()
        if tok.kind == "keyword":
            self.next()
            word = tok.value
            if word in ("end", "else"):
                if word == "end":
                    self.expect_right()
                return word
            if word in ("if", "range", "with"):
                nodes.append(self.parse_branch(word, tok.pos))
                return None
            if word in ("break", "continue"):
                if not self.range_depth:
                    raise self.error(f"{{{{{word}}}}} outside {{{{range}}}}", tok.pos)
                self.expect_right()
                nodes.append(LoopControlNode(tok.pos, word))
                return None
            raise self.error(f"{{{{{word}}}}} is not supported", tok.pos)
        pipe = self.parse_pipeline("command", allow_decl=True)
        nodes.append(ActionNode(left.pos, pipe))
        return None

    def expect_right(self) -> None:
        tok = self.next()
        if tok.kind != "right":
            raise self.error(f"unexpected {self.describe(tok)} in end", tok.pos)

    def parse_branch(self, kind: str, pos: int) -> BranchNode:
        saved_vars = len(self.vars)
        pipe = self.parse_pipeline(kind, allow_decl=True)
        self.range_depth += kind == "range"
        body, stop = self.parse_list()
        self.range_depth -= kind == "range"
        else_body: list[Node] | None = None
        if stop == "else":
            nxt = self.peek()
            if kind != "range" and nxt.kind == "keyword" and nxt.value in ("if", "with"):
                self.next()
                else_body = [self.parse_branch(nxt.value, nxt.pos)]
                stop = "end"
            else:
                self.expect_right()
                else_body, stop = self.parse_list()
        if stop != "end":
            raise self.error("unexpected EOF")
        del self.vars[saved_vars:]
        return BranchNode(pos, kind, pipe, body, else_body)

    def parse_decls(self, pipe: PipeNode, allow_decl: bool) -> None:
        """Consume `$x :=`, `$x =` or `$i, $e :=` at the start of a pipeline, if present."""
        j = self.i
        names = []
        while True:
            tok = self.tokens[j]
            while tok.kind == "space":
                j += 1
                tok = self.tokens[j]
            if tok.kind != "var":
                return
            names.append(tok.value)
            j += 1
            while self.tokens[j].kind == "space":
                j += 1
            op = self.tokens[j]
            if op.kind == "comma" and len(names) == 1:
                j += 1
                continue
            if op.kind not in ("declare", "assign") or not allow_decl:
                return
            break
        self.i = j + 1
        pipe.decls, pipe.is_assign = names, op.kind == "assign"
        if op.kind == "declare":
            self.vars.extend(names)
        else:
            for name in names:
                self.check_var(name, op.pos)

    def parse_pipeline(self, context: str, allow_decl: bool = False) -> PipeNode:
        pipe = PipeNode(self.peek().pos)
        self.parse_decls(pipe, allow_decl)
        end_kind = "rparen" if context == "paren" else "right"
        while True:
            tok = self.peek()
            if tok.kind == end_kind:
                self.next()
                if not pipe.cmds:
                    raise self.error(f"missing value for {context}", tok.pos)
                return pipe
            if tok.kind in ("right", "rparen", "eof"):
                msg = "unclosed left paren" if context == "paren" else f"unexpected {self.describe(tok)} in {context}"
                raise self.error(msg, tok.pos)
            pipe.cmds.append(self.parse_command())
            if self.peek().kind == "pipe":
                self.next()
                if self.peek().kind in ("right", "rparen"):
                    raise self.error("missing command", self.peek().pos)

    def parse_command(self) -> CommandNode:
        cmd = CommandNode(self.peek().pos)
        while True:
            tok = self.peek()
            if tok.kind in ("pipe", "right", "rparen", "eof"):
                if not cmd.args:
                    raise self.error("empty command", tok.pos)
                return cmd
            if cmd.args and self.tokens[self.i].kind != "space":
                raise self.error(f"unexpected {self.describe(tok)} in operand", tok.pos)
            cmd.args.append(self.parse_operand())

    def parse_operand(self) -> Node:
        node = self.parse_term()
        names: list[str] = []
        chain_pos = None
        while self.tokens[self.i].kind == "field":
            tok = self.next(skip_space=False)
            chain_pos = tok.pos if chain_pos is None else chain_pos
            names.append(tok.value[1:])
        if not names:
            return node
        if isinstance(node, FieldNode):
            return FieldNode(chain_pos, node.names + names)
        if isinstance(node, VariableNode):
            return VariableNode(chain_pos, node.names + names)
        if isinstance(node, (BoolNode, StringNode, NumberNode, NilNode, DotNode)):
            raise self.error(f"unexpected . after term {str(node)!r}", chain_pos)
        return ChainNode(chain_pos, node, names)

    def parse_term(self) -> Node:
        tok = self.next()
        kind, val, pos = tok.kind, tok.value, tok.pos
        if kind == "field":
            return FieldNode(pos, [val[1:]])
        if kind == "dot":
            return DotNode(pos)
        if kind == "var":
            self.check_var(val, pos)
            return VariableNode(pos, [val])
        if kind == "ident":
            if val not in self.funcs:
                raise self.error(f'function "{val}" not defined', pos)
            return IdentifierNode(pos, val)
        if kind == "bool":
            return BoolNode(pos, val == "true")
        if kind == "nil":
            return NilNode(pos)
        if kind in ("string", "rawstring"):
            try:
                return StringNode(pos, val, unquote(val))
            except ValueError as exc:
                raise self.error(str(exc), pos) from None
        if kind == "char":
            return NumberNode(pos, val, ord(unquote(val)[:1] or "\0"))
        if kind == "number":
            try:
                return NumberNode(pos, val, parse_number(val))
            except ValueError:
                raise self.error(f"illegal number syntax: {val!r}", pos) from None
        if kind == "lparen":
            return self.parse_pipeline("paren")
        raise self.error(f"unexpected {self.describe(tok)} in operand", pos)

    def check_var(self, name: str, pos: int) -> None:
        if name not in self.vars:
            raise self.error(f'undefined variable "{name}"', pos)

    @staticmethod
    def describe(tok: Token) -> str:
        names = {"right": "\"}}\"", "rparen": "\")\"", "eof": "EOF", "pipe": "\"|\""}
        return names.get(tok.kind, f'"{tok.value}"' if tok.kind != "keyword" else f"<{tok.value}>")


def parse(text: str, func_names: Iterable[str]) -> list[Node]:
    """Parse `text`; raise TemplateParseError with Go's wording on syntax errors."""
    return Parser(text, func_names).parse()
