"""Executes parsed templates with text/template's semantics and error messages.

`raw=True` reproduces docker's inspect fallback: data decoded from JSON without a schema, with
`missingkey=error`, so a missing key is an error and every value's static type is
`interface {}`. Otherwise a missing map key yields `<no value>` like Go's default.
"""

from __future__ import annotations

import inspect
from typing import Any

from shoal.cli.govalues import NO_VALUE, GoSlice, GoValue, print_value, truthy, type_name, fmt_v
from shoal.cli.template_funcs import Func, FuncError
from shoal.cli.template_parse import (
    ActionNode,
    BoolNode,
    BranchNode,
    ChainNode,
    CommandNode,
    DotNode,
    FieldNode,
    IdentifierNode,
    LoopControlNode,
    NilNode,
    Node,
    NumberNode,
    PipeNode,
    StringNode,
    TextNode,
    VariableNode,
)

_MISSING = object()  # "no piped value" marker (distinct from a piped None)


class TemplateExecError(Exception):
    """Execution failed; `output` is what had been written before the failure."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class Executor:
    """One execution of a template over one data value."""

    def __init__(self, source: str, funcs: dict[str, Func], raw: bool) -> None:
        self.source = source
        self.funcs = funcs
        self.raw = raw
        self.out: list[str] = []
        self.vars: list[tuple[str, Any]] = []

    def run(self, nodes: list[Node], data: Any) -> str:
        self.vars = [("$", data)]
        self.walk_list(data, nodes)
        return "".join(self.out)

    # -- errors ---------------------------------------------------------------------------

    def fail(self, node: Node, msg: str) -> TemplateExecError:
        before = self.source[:node.pos]
        line = before.count("\n") + 1
        col = len(before[before.rfind("\n") + 1:].encode())
        text = f'template: :{line}:{col}: executing "" at <{node}>: {msg}'
        return TemplateExecError(text, "".join(self.out))

    # -- statements -------------------------------------------------------------------------

    def walk_list(self, dot: Any, nodes: list[Node]) -> None:
        for node in nodes:
            self.walk(dot, node)

    def walk(self, dot: Any, node: Node) -> None:
        if isinstance(node, TextNode):
            self.out.append(node.text)
        elif isinstance(node, ActionNode):
            value = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decls:
                self.out.append(print_value(value))
        elif isinstance(node, BranchNode):
            self.walk_branch(dot, node)
        elif isinstance(node, LoopControlNode):
            raise _Break() if node.kind == "break" else _Continue()

    def walk_branch(self, dot: Any, node: BranchNode) -> None:
        mark = len(self.vars)
        try:
            value = self.eval_pipeline(dot, node.pipe)
            if node.kind == "range":
                self.walk_range(dot, node, value, mark)
            elif truthy(value):
                self.walk_list(value if node.kind == "with" else dot, node.body)
            elif node.else_body is not None:
                self.walk_list(dot, node.else_body)
        finally:
            del self.vars[mark:]

    def walk_range(self, dot: Any, node: BranchNode, value: Any, mark: int) -> None:
        items = self.range_items(node, value)
        decls = node.pipe.decls
        base = len(self.vars)
        for key, elem in items:
            del self.vars[base:]
            if decls:
                self.set_var(decls[-1], elem)
            if len(decls) > 1:
                self.set_var(decls[0], key)
            try:
                self.walk_list(elem, node.body)
            except _Break:
                break
            except _Continue:
                continue
        del self.vars[base:]
        if not items and node.else_body is not None:
            self.walk_list(dot, node.else_body)

    def range_items(self, node: BranchNode, value: Any) -> list[tuple[Any, Any]]:
        if value is None or value is NO_VALUE:
            return []
        if isinstance(value, list):
            return list(enumerate(value))
        if isinstance(value, dict):
            return [(k, value[k]) for k in sorted(value)]
        if isinstance(value, int) and not isinstance(value, bool):
            return [(i, i) for i in range(value)]
        items = value.iterate() if isinstance(value, GoValue) else None
        if items is None:
            raise self.fail(node.pipe, f"range can't iterate over {fmt_v(value)}")
        return items

    # -- variables --------------------------------------------------------------------------

    def set_var(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        self.vars.append((name, value))

    def lookup(self, node: Node, name: str) -> Any:
        for var, value in reversed(self.vars):
            if var == name:
                return value
        raise self.fail(node, f"undefined variable: {name}")

    # -- expressions ------------------------------------------------------------------------

    def eval_pipeline(self, dot: Any, pipe: PipeNode) -> Any:
        value: Any = _MISSING
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
        for name in pipe.decls:
            if pipe.is_assign:
                self.set_var(name, value)
            else:
                self.vars.append((name, value))
        return value

    def eval_command(self, dot: Any, cmd: CommandNode, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, FieldNode):
            return self.eval_chain_fields(dot, dot, first, first.names, cmd.args, final)
        if isinstance(first, ChainNode):
            receiver = self.eval_arg(dot, first.node)
            return self.eval_chain_fields(dot, receiver, first, first.names, cmd.args, final)
        if isinstance(first, IdentifierNode):
            return self.eval_function(dot, first, cmd, final)
        if isinstance(first, VariableNode):
            return self.eval_variable(dot, first, cmd.args, final)
        if len(cmd.args) > 1 or final is not _MISSING:
            raise self.fail(first, f"can't give argument to non-function {first}")
        if isinstance(first, PipeNode):
            return self.eval_pipeline(dot, first)
        if isinstance(first, NilNode):
            raise self.fail(first, "nil is not a command")
        return self.literal(dot, first)

    def literal(self, dot: Any, node: Node) -> Any:
        if isinstance(node, DotNode):
            return dot
        if isinstance(node, (BoolNode, NumberNode, StringNode)):
            return node.value
        return None

    def eval_variable(self, dot: Any, node: VariableNode, args: list[Node], final: Any) -> Any:
        value = self.lookup(node, node.names[0])
        if len(node.names) == 1:
            if len(args) > 1 or final is not _MISSING:
                raise self.fail(node, f"can't give argument to non-function {node}")
            return value
        return self.eval_chain_fields(dot, value, node, node.names[1:], args, final)

    def eval_arg(self, dot: Any, node: Node) -> Any:
        """Evaluate a node used as an argument (no further arguments applied to it)."""
        if isinstance(node, FieldNode):
            return self.eval_chain_fields(dot, dot, node, node.names, [node], _MISSING)
        if isinstance(node, ChainNode):
            receiver = self.eval_arg(dot, node.node)
            return self.eval_chain_fields(dot, receiver, node, node.names, [node], _MISSING)
        if isinstance(node, VariableNode):
            return self.eval_variable(dot, node, [node], _MISSING)
        if isinstance(node, PipeNode):
            return self.eval_pipeline(dot, node)
        if isinstance(node, IdentifierNode):
            return self.eval_function(dot, node, CommandNode(node.pos, [node]), _MISSING)
        return self.literal(dot, node)

    def eval_chain_fields(
        self, dot: Any, receiver: Any, node: Node, names: list[str], args: list[Node], final: Any
    ) -> Any:
        for name in names[:-1]:
            receiver = self.eval_field(dot, name, node, [node], _MISSING, receiver)
        return self.eval_field(dot, names[-1], node, args, final, receiver)

    def eval_field(
        self, dot: Any, name: str, node: Node, args: list[Node], final: Any, receiver: Any
    ) -> Any:
        has_args = len(args) > 1 or final is not _MISSING
        if receiver is NO_VALUE and not self.raw:
            return NO_VALUE
        if receiver is None or receiver is NO_VALUE:
            raise self.fail(node, f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(receiver, GoValue):
            method = receiver.method(name)
            if method is not None:
                return self.call_method(dot, name, method, node, args, final)
            try:
                value = receiver.field(name)
            except KeyError:
                raise self.fail(node, f"can't evaluate field {name} in type {receiver.go_type}") from None
            if has_args:
                raise self.fail(node, f"{name} has arguments but cannot be invoked as function")
            return value
        if isinstance(receiver, dict):
            if has_args:
                raise self.fail(node, f"{name} is not a method but has arguments")
            if name in receiver:
                return receiver[name]
            if self.raw:
                raise self.fail(node, f'map has no entry for key "{name}"')
            return NO_VALUE
        kind = "interface {}" if self.raw else type_name(receiver)
        raise self.fail(node, f"can't evaluate field {name} in type {kind}")

    def call_method(self, dot: Any, name: str, method: Any, node: Node, args: list[Node], final: Any) -> Any:
        nparams = len(inspect.signature(method).parameters)
        values = [self.eval_arg_typed(dot, a, "string") for a in args[1:]]
        if final is not _MISSING:
            values.append(self.check_type(node, final, "string"))
        if len(values) != nparams:
            raise self.fail(node, f"wrong number of args for {name}: want {nparams} got {len(values)}")
        return method(*values)

    def eval_function(self, dot: Any, ident: IdentifierNode, cmd: CommandNode, final: Any) -> Any:
        func = self.funcs.get(ident.name)
        if func is None:
            raise self.fail(ident, f'"{ident.name}" is not a defined function')
        arg_nodes = cmd.args[1:]
        count = len(arg_nodes) + (final is not _MISSING)
        want = len(func.params)
        if count < want or (count > want and func.variadic is None):
            at_least = "at least " if func.variadic else ""
            raise self.fail(ident, f"wrong number of args for {ident.name}: want {at_least}{want} got {count}")
        if func.lazy:
            return self.eval_lazy(dot, ident.name, arg_nodes, final)
        types = list(func.params) + [func.variadic or "any"] * (count - want)
        values = [self.eval_arg_typed(dot, n, t) for n, t in zip(arg_nodes, types)]
        if final is not _MISSING:
            values.append(self.check_type(ident, final, types[-1]))
        try:
            return func.fn(*values)
        except FuncError as exc:
            raise self.fail(cmd, f"error calling {ident.name}: {exc}") from None

    def eval_lazy(self, dot: Any, name: str, arg_nodes: list[Node], final: Any) -> Any:
        """`and`/`or`: stop at the first falsy/truthy argument and return it."""
        value: Any = None
        thunks = [lambda n=n: self.eval_arg(dot, n) for n in arg_nodes]
        if final is not _MISSING:
            thunks.append(lambda: final)
        for thunk in thunks:
            value = thunk()
            value = None if value is NO_VALUE else value
            if truthy(value) != (name == "and"):
                return value
        return value

    def eval_arg_typed(self, dot: Any, node: Node, kind: str) -> Any:
        if isinstance(node, NumberNode) and kind == "string":
            raise self.fail(node, f"expected string; found {node}")
        if isinstance(node, NumberNode) and kind == "int" and isinstance(node.value, float):
            raise self.fail(node, f"expected integer; found {node}")
        if isinstance(node, NilNode):
            if kind == "any":
                return None
            raise self.fail(node, f"cannot assign nil to {kind}")
        return self.check_type(node, self.eval_arg(dot, node), kind)

    def check_type(self, node: Node, value: Any, kind: str) -> Any:
        """text/template's validateType: the argument must be assignable to the parameter."""
        if kind == "any":
            return None if value is NO_VALUE else value
        if value is None or value is NO_VALUE:
            raise self.fail(node, f"invalid value; expected {kind}")
        got = type_name(value)
        ok = {
            "string": got == "string",
            "int": got == "int",
            "[]string": isinstance(value, GoSlice) and value.elem_type == "string",
        }.get(kind, False)
        if not ok:
            raise self.fail(node, f"wrong type for value; expected {kind}; got {got}")
        return value
