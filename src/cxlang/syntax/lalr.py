"""A small LALR(1) driver over the tables Lark computes from cx.lark.

Lark is the parser generator (grammar analysis, table construction, on-disk cache);
this module runs the tables. Lark's own driver looks every reduction's callback up by
hashing a `Rule` object in Python; here actions are plain ints and rules are tuples,
and unit rules (`stmt: if_stmt`) only swap the state. That halves parse time, which
matters for the 0.3 s parse+compile budget of a 2,000-line program.

Actions: a state's row maps a terminal to `target >= 0` (shift) or `~rule < 0`
(reduce), and a rule name to the goto target.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from lark import Lark
from lark.parsers.lalr_analysis import Shift

from .lexer import END, Tok

# A callback that keeps its only child: the driver then skips the call altogether.
PASS = itemgetter(0)

Callback = Callable[[list[Any]], Any]
Rule = tuple[int, str, Callback | None]  # (children, rule name, callback or None = PASS)


@dataclass(frozen=True, slots=True)
class Tables:
    actions: tuple[dict[str, int], ...]
    rules: tuple[Rule, ...]
    start_state: int
    end_state: int

    @classmethod
    def from_lark(cls, lark: Lark, builder: object) -> Tables:
        """Convert Lark's parse table; every rule (or alias) needs a builder callback."""
        table = lark.parser.parser.parser.parse_table
        index: dict[Any, int] = {}
        rules: list[Rule] = []
        actions: list[dict[str, int]] = []
        for state in range(len(table.states)):
            row: dict[str, int] = {}
            for symbol, (op, arg) in table.states[state].items():
                if op is Shift:
                    row[symbol] = arg
                    continue
                if arg not in index:
                    index[arg] = len(rules)
                    rules.append(_rule(arg, builder))
                row[symbol] = ~index[arg]
            actions.append(row)
        (start,) = table.start_states.values()
        (end,) = table.end_states.values()
        return cls(tuple(actions), tuple(rules), start, end)


def _rule(rule: Any, builder: object) -> Rule:
    name: str = rule.alias or rule.origin.name
    callback = getattr(builder, name, None)
    if callback is None:
        raise LookupError(f"cx.lark rule {name!r} has no callback in {type(builder).__name__}")
    size = len(rule.expansion)
    if callback is PASS and size == 1:
        return (1, rule.origin.name, None)
    return (size, rule.origin.name, callback)


class ParseState:
    """The parser's two stacks; recovery pops and feeds them directly."""

    __slots__ = ("states", "tables", "values")

    def __init__(self, tables: Tables) -> None:
        self.tables = tables
        self.states: list[int] = [tables.start_state]
        self.values: list[Any] = []

    def run(self, tokens: Sequence[Tok], start: int) -> int:
        """Feed `tokens[start:]` (the last one is END).

        Returns -1 once the program is accepted (the result is `values[-1]`), else the
        index of the first token the grammar refuses.
        """
        actions = self.tables.actions
        rules = self.tables.rules
        states = self.states
        values = self.values
        push_state = states.append
        push_value = values.append
        last = len(tokens) - 1
        for i in range(start, last):
            tok = tokens[i]
            kind = tok.type
            while True:
                act = actions[states[-1]].get(kind)
                if act is None:
                    return i
                if act >= 0:
                    push_state(act)
                    push_value(tok)
                    break
                size, name, callback = rules[~act]
                if callback is None:
                    states.pop()
                elif size:
                    children = values[-size:]
                    del values[-size:]
                    del states[-size:]
                    push_value(callback(children))
                else:
                    push_value(callback([]))
                push_state(actions[states[-1]][name])
        return -1 if self.feed_end() else last

    def feed(self, tok: Tok) -> bool:
        """Shift one token (after any reductions); False, with nothing changed, if refused."""
        if not self.accepts((tok.type,)):
            return False
        actions = self.tables.actions
        states = self.states
        values = self.values
        while True:
            act = actions[states[-1]][tok.type]
            if act >= 0:
                states.append(act)
                values.append(tok)
                return True
            self._reduce(~act)

    def feed_end(self) -> bool:
        """Reduce to the start symbol at end of input; False if the input is incomplete."""
        if not self.accepts((END,)):
            return False
        actions = self.tables.actions
        end_state = self.tables.end_state
        while self.states[-1] != end_state:
            self._reduce(~actions[self.states[-1]][END])
        return True

    def _reduce(self, rule: int) -> None:
        size, name, callback = self.tables.rules[rule]
        states = self.states
        values = self.values
        children = values[len(values) - size :]
        del values[len(values) - size :]
        del states[len(states) - size :]
        values.append(children[0] if callback is None else callback(children))
        states.append(self.tables.actions[states[-1]][name])

    def accepts(self, kinds: Iterable[str]) -> bool:
        """Would these token types be taken in order? Simulated, nothing changes.

        The simulation pushes onto a small overlay instead of copying the stack, so it
        costs the same on a deeply nested input as on a flat one.
        """
        actions = self.tables.actions
        rules = self.tables.rules
        end_state = self.tables.end_state
        base = self.states
        depth = len(base)  # entries of `base` still on the simulated stack
        extra: list[int] = []  # pushed above them
        for kind in kinds:
            while True:
                top = extra[-1] if extra else base[depth - 1]
                act = actions[top].get(kind)
                if act is None:
                    return False
                if act >= 0:
                    extra.append(act)
                    break
                size, name, _ = rules[~act]
                if size <= len(extra):
                    del extra[len(extra) - size :]
                else:
                    depth -= size - len(extra)
                    extra.clear()
                top = extra[-1] if extra else base[depth - 1]
                extra.append(actions[top][name])
                if extra[-1] == end_state:
                    return True
        return True

    def expected(self) -> set[str]:
        """Terminals really acceptable now (the LALR row alone over-approximates)."""
        return {
            kind
            for kind in self.tables.actions[self.states[-1]]
            if kind.isupper() and self.accepts((kind,))
        }
