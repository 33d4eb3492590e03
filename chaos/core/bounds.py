"""Bounds as arithmetic over the service's limits: `request_deadline + slack`.

Scenario files write bounds as expressions so that they follow the service's
configuration. A stack may add names of its own (the HA stack: Patroni's `ttl`,
`loop_wait`...); a bound that uses one is declared with those names allowed.

The evaluator is ours, and small on purpose: `eval` would run anything, and a library
(asteval, simpleeval) is a dependency for four operators. The expression is parsed with
`ast` and only numbers, the names below, `+ - * /`, unary minus and parentheses are
accepted; anything else is a ScenarioError naming what was found.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields

from chaos.core.limits import Limits
from chaos.errors import ScenarioError

__all__ = [
    "ACQUIRE",
    "DEADLINE",
    "HEALTH",
    "RECOVERY",
    "SLACK",
    "Bound",
    "bound_names",
    "evaluate",
]

SLACK = 0.5
"""Seconds allowed on top of a configured bound: HTTP, event loop, a loaded 2-core box.
Named `slack` in bound expressions; the toolkit's only slack."""

_BINARY: Mapping[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def bound_names(
    limits: Limits | None = None, extra: Mapping[str, float] | None = None
) -> dict[str, float]:
    """The names an expression may use, with their values (0.0 without limits): the
    limits, `slack`, and the stack's own names (`extra`)."""
    names = {f.name: float(getattr(limits, f.name)) if limits else 0.0 for f in fields(Limits)}
    names["slack"] = SLACK
    names.update(extra or {})
    return names


def _parse(text: str) -> ast.expr:
    try:
        return ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ScenarioError(f"bound {text!r} is not an expression: {exc.msg}") from exc


def _value(node: ast.expr, names: Mapping[str, float], text: str) -> float:
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
        return float(node.value)
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise ScenarioError(
                f"bound {text!r}: unknown name {node.id!r}; expected one of "
                f"{', '.join(sorted(names))}"
            )
        return names[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_value(node.operand, names, text)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left = _value(node.left, names, text)
        right = _value(node.right, names, text)
        if isinstance(node.op, ast.Div) and right == 0:
            raise ScenarioError(f"bound {text!r} divides by zero")
        return _BINARY[type(node.op)](left, right)
    raise ScenarioError(
        f"bound {text!r}: {ast.unparse(node)!r} is not allowed; expected numbers, limit "
        "names, + - * / and parentheses"
    )


def evaluate(text: str, names: Mapping[str, float]) -> float:
    """The value of a bound expression over `names`."""
    return _value(_parse(text), names, text)


@dataclass(frozen=True, slots=True)
class Bound:
    """An upper bound in seconds: an expression over the service's limits (and over
    `allowed`, names a stack supplies when the bound is evaluated)."""

    expression: str
    allowed: frozenset[str] = field(default=frozenset(), compare=False)

    def __post_init__(self) -> None:
        # every name and operator checked now
        evaluate(self.expression, bound_names(extra=dict.fromkeys(self.allowed, 0.0)))

    def seconds(self, limits: Limits, extra: Mapping[str, float] | None = None) -> float:
        """The bound for a service with these limits, on a stack with these names."""
        return evaluate(self.expression, bound_names(limits, extra))

    def __str__(self) -> str:
        return self.expression


ACQUIRE = Bound("acquire_timeout + slack")
DEADLINE = Bound("request_deadline + slack")
HEALTH = Bound("health_timeout + slack")
RECOVERY = Bound("reconnect_timeout + acquire_timeout + slack")
"""From a fault's end to the first success: the pool reconnects within its reconnect
timeout, a request waiting then gets the connection within the acquire timeout."""
