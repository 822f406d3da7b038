"""The value semantics compiled CX code calls: property access, operators, printing.

Compiled code runs with empty ``__builtins__``; these functions (and the program host) are the
only things it can reach. Each takes and returns CX values only - ``None``, ``bool``, ``int``,
``float``, ``str``, ``list``, ``dict`` and entity instances - and never touches a Python
attribute of its arguments, which is what keeps a program inside its sandbox.

Numbers: whole numbers are exact at any size, and ``print`` writes every digit (Python's own
conversion stops at 4,300). Fractions follow IEEE 754, as JavaScript's numbers do: they overflow
to Infinity, ``Infinity % x`` is NaN, and a whole number too large for a fraction counts as
Infinity when mixed with one; ``print`` writes Infinity and NaN as ``null``, as JSON has no
words for them. Only ``x / 0`` and ``x % 0`` are errors. What goes wrong is a
:class:`CxRuntimeError` in CX words, never a Python exception's text.
"""

from __future__ import annotations

import json
import math
import operator
import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from json.encoder import encode_basestring
from types import CodeType
from typing import Any

from ..runtime.limits import LimitExceeded

__all__ = ["INTERRUPTIBLE", "LIBRARY", "PRELUDE", "CxRuntimeError", "Entity", "bounded_prelude",
           "display", "size_of", "truthy"]


class CxRuntimeError(Exception):
    """A CX program did something its values do not allow (``1 / 0``, ``true + 1``, ...)."""

    message_is_complete = True  # report "division by zero", not "CxRuntimeError: ..."


class Entity:
    """An instance of a ``conscious`` or ``object`` type: a bag of properties with an identity."""

    __slots__ = ("id", "properties", "type_name")

    def __init__(self, type_name: str, entity_id: str, properties: dict[str, Any]) -> None:
        self.type_name = type_name
        self.id = entity_id
        self.properties = properties

    def __repr__(self) -> str:
        return f"<{self.type_name} {self.id}>"

    def as_data(self) -> dict[str, Any]:
        """The entity as plain data, its properties, as ``print`` writes it: what the services
        (which cannot import this module) write for it in a model's prompt or a message."""
        return self.properties


def type_name(value: Any) -> str:
    """What a message calls *value*'s kind: "a number", "an array", "null", "a Point"."""
    kind = type_of(value)
    if kind == "null":
        return kind
    return f"an {kind}" if kind in ("array", "object") else f"a {kind}"


# Display ---------------------------------------------------------------------------------------


def display(value: Any) -> str:
    """How ``print`` and string ``+`` write a value: strings raw, everything else as JSON."""
    if isinstance(value, str):
        return value
    return _json(value)


# What _json's to-do stack holds besides values: text to write as is, and the end of a
# container (which takes it off the path of containers being written, for the cycle check).
_VALUE, _TEXT, _LEAVE = 0, 1, 2


def _json(value: Any) -> str:
    """*value* as JSON, written with a stack of its own rather than Python's: a value nested
    thousands deep (a model's answer, an array built in a loop) is written like any other."""
    parts: list[str] = []
    todo: list[tuple[int, Any]] = [(_VALUE, value)]
    open_containers: set[int] = set()  # the containers around the value being written
    while todo:
        kind, item = todo.pop()
        if kind == _TEXT:
            parts.append(item)
        elif kind == _LEAVE:
            open_containers.discard(item)
        elif isinstance(item, Entity | dict | list | tuple):
            if id(item) in open_containers:
                raise CxRuntimeError(f"cannot write {type_name(item)} that contains itself")
            open_containers.add(id(item))
            todo.append((_LEAVE, id(item)))
            if isinstance(item, list | tuple):
                parts.append("[")
                todo.append((_TEXT, "]"))
                for i in range(len(item) - 1, -1, -1):
                    todo.append((_VALUE, item[i]))
                    if i:
                        todo.append((_TEXT, ", "))
            else:
                entries = list((item.properties if isinstance(item, Entity) else item).items())
                parts.append("{")
                todo.append((_TEXT, "}"))
                for i in range(len(entries) - 1, -1, -1):
                    key, element = entries[i]
                    todo.append((_VALUE, element))
                    todo.append((_TEXT, (", " if i else "") + encode_basestring(str(key)) + ": "))
        else:
            parts.append(_scalar(item))
    return "".join(parts)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return _decimal(value)
    if isinstance(value, float):
        return float.__repr__(value) if math.isfinite(value) else "null"
    return encode_basestring(value if isinstance(value, str) else str(value))


# Python refuses to convert an int of more than 4,300 digits (sys.get_int_max_str_digits(), a
# guard against quadratic conversions); CX writes every digit, converting pieces under the limit.
_PIECE_BITS = 13_000  # under 3,914 digits
_LOG2_10 = math.log2(10)


def _decimal(number: int) -> str:
    """*number*'s decimal digits, however many (bounded only by the memory the number takes)."""
    if number < 0:
        return "-" + _decimal(-number)
    bits = number.bit_length()
    if bits <= _PIECE_BITS:
        return int.__repr__(number)
    half = int(bits / _LOG2_10) // 2  # about half the digits: the recursion is log2 deep
    high, low = divmod(number, 10 ** half)
    return _decimal(high) + _decimal(low).rjust(half, "0")


def truthy(value: Any) -> bool:
    """null, false, 0 and "" are false; everything else ([] and {} too) is true."""
    if value is None or value is False:
        return False
    if value is True:
        return True
    if isinstance(value, int | float):
        return value != 0 and not (isinstance(value, float) and math.isnan(value))
    if isinstance(value, str):
        return value != ""
    return True


# Properties and indexing -----------------------------------------------------------------------


def get(target: Any, name: str) -> Any:
    """``target.name``: a missing property, or any property of null, is null."""
    if isinstance(target, dict):
        return target.get(name)
    if isinstance(target, Entity):
        return target.properties.get(name)
    if name == "length" and isinstance(target, list | str):
        return len(target)
    return None


def payload_of(event: Any) -> Any:
    """``event.payload`` on a handler's parameter: what was emitted. An object payload is the
    event itself (unless it has a ``payload`` property); ``emit x, "text"`` arrives as
    ``{ payload: "text" }``."""
    if isinstance(event, dict) and "payload" not in event:
        return event
    return get(event, "payload")


def set_(target: Any, name: str, value: Any) -> Any:
    if isinstance(target, dict):
        target[name] = value
    elif isinstance(target, Entity):
        target.properties[name] = value
    else:
        raise CxRuntimeError(f"cannot set property {name!r} on {type_name(target)}")
    return value


def index(target: Any, key: Any) -> Any:
    """``target[key]``: arrays and strings by whole number, objects by string."""
    if isinstance(target, list | str):
        if isinstance(key, int) and not isinstance(key, bool):
            return target[key] if -len(target) <= key < len(target) else None
        if key == "length":
            return len(target)
        raise CxRuntimeError(f"cannot index {type_name(target)} with {type_name(key)}")
    if isinstance(target, dict | Entity):
        if not isinstance(key, str):
            key = display(key)
        return get(target, key)
    if target is None:
        return None
    raise CxRuntimeError(f"cannot index {type_name(target)}")


def set_index(target: Any, key: Any, value: Any) -> Any:
    if isinstance(target, list):
        if not isinstance(key, int) or isinstance(key, bool):
            raise CxRuntimeError(f"an array index must be a whole number, got {display(key)}")
        if key == len(target):
            target.append(value)
        elif -len(target) <= key < len(target):
            target[key] = value
        else:
            raise CxRuntimeError(f"index {key} is outside the array (length {len(target)})")
        return value
    return set_(target, key if isinstance(key, str) else display(key), value)


def iterate(value: Any) -> Iterator[Any]:
    """``for (var x in value)``: an array's elements, an object's keys, a string's characters."""
    if isinstance(value, list | str):
        return iter(list(value))
    if isinstance(value, dict):
        return iter(list(value))
    if isinstance(value, Entity):
        return iter(list(value.properties))
    if value is None:
        return iter(())
    raise CxRuntimeError(f"cannot loop over {type_name(value)}")


# Operators -------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numbers(op: str, left: Any, right: Any) -> None:
    if not (_is_number(left) and _is_number(right)):
        raise CxRuntimeError(
            f"cannot apply '{op}' to {type_name(left)} and {type_name(right)}"
        )


def _as_float(number: int | float) -> float:
    """*number* as a fraction: a whole number too large for one counts as Infinity, as a
    fraction's own arithmetic overflows to it (Python would raise OverflowError instead)."""
    try:
        return float(number)
    except OverflowError:
        return -math.inf if number < 0 else math.inf


def _mixed(operation: Callable[[float, float], float], left: int | float,
           right: int | float) -> int | float:
    """*operation* on two numbers, one at least a fraction: see :func:`_as_float`."""
    try:
        return operation(left, right)
    except OverflowError:
        return operation(_as_float(left), _as_float(right))


def add(left: Any, right: Any) -> Any:
    """Numbers add; with a string on either side, ``+`` concatenates what print would write."""
    if type(left) is int and type(right) is int:
        return left + right
    if isinstance(left, str) or isinstance(right, str):
        return display(left) + display(right)
    if isinstance(left, list) and isinstance(right, list):
        return left + right
    _numbers("+", left, right)
    return _mixed(operator.add, left, right)


def sub(left: Any, right: Any) -> Any:
    if type(left) is int and type(right) is int:
        return left - right
    _numbers("-", left, right)
    return _mixed(operator.sub, left, right)


def mul(left: Any, right: Any) -> Any:
    if type(left) is int and type(right) is int:
        return left * right
    _numbers("*", left, right)
    return _mixed(operator.mul, left, right)


def div(left: Any, right: Any) -> Any:
    _numbers("/", left, right)
    if right == 0:
        raise CxRuntimeError("division by zero")
    if type(left) is int and type(right) is int:
        if left % right == 0:
            return left // right  # 6 / 3 is 2, as CX writes it; 7 / 2 is 3.5
        try:
            return left / right  # correctly rounded, however large both are
        except OverflowError:  # the quotient itself is past the largest fraction
            return -math.inf if (left < 0) != (right < 0) else math.inf
    return _mixed(operator.truediv, left, right)


def mod(left: Any, right: Any) -> Any:
    _numbers("%", left, right)
    if right == 0:
        raise CxRuntimeError("modulo by zero")
    if isinstance(left, float) or isinstance(right, float):
        left, right = _as_float(left), _as_float(right)
        # Infinity % x is NaN, as in JavaScript and IEEE 754 (Python's fmod raises instead).
        return math.nan if math.isinf(left) else math.fmod(left, right)
    # The sign of the left side, as JavaScript does; exact for integers of any size.
    remainder = abs(left) % abs(right)
    return -remainder if left < 0 else remainder


def increment(value: Any, delta: int) -> Any:
    """``x++`` (*delta* 1) and ``x--`` (-1): numbers only, where ``x += 1`` would also append
    to a string."""
    if not _is_number(value):
        raise CxRuntimeError(f"cannot apply '{'++' if delta > 0 else '--'}' to "
                             f"{type_name(value)}: it counts numbers only")
    return value + delta


def neg(value: Any) -> Any:
    if not _is_number(value):
        raise CxRuntimeError(f"cannot negate {type_name(value)}")
    return -value


def eq(left: Any, right: Any) -> bool:
    """Equality without Python's surprises: ``true == 1`` is false in CX, at any depth.

    Arrays and objects are compared with a stack of this function's own, not Python's ``==``
    (one C call that recurses, never checks the time limit and, on values that share their
    parts, does work exponential in their size). Each pair of containers is compared once: a
    pair met again (a shared part, or a value that contains itself) is taken as equal while
    its first comparison goes on, so the work is bounded by the pairs of parts, not the paths
    to them, and a value that contains itself compares in finite time."""
    if left is right:
        return not (type(left) is float and math.isnan(left))
    if isinstance(left, list | dict) and type(left) is type(right):
        return _containers_equal(left, right)
    return _scalars_equal(left, right)


def _scalars_equal(left: Any, right: Any) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    if isinstance(left, Entity) or isinstance(right, Entity):
        return left is right
    if isinstance(left, list | dict) or isinstance(right, list | dict):
        return False  # an array and an object, or a container and a scalar
    return bool(left == right)


def _containers_equal(left: list[Any] | dict[str, Any], right: list[Any] | dict[str, Any]) -> bool:
    todo: list[tuple[Any, Any]] = [(left, right)]
    seen: set[tuple[int, int]] = set()  # pairs compared or being compared (both stay alive)
    while todo:
        a, b = todo.pop()
        if a is b:
            if type(a) is float and math.isnan(a):
                return False
            continue
        if not (isinstance(a, list | dict) and type(a) is type(b)):
            if not _scalars_equal(a, b):
                return False
            continue
        pair = (id(a), id(b))
        if pair in seen:
            continue
        if len(a) != len(b):
            return False
        seen.add(pair)
        if isinstance(a, list):
            todo.extend(zip(a, b, strict=True))
        else:
            for key, value in a.items():
                if key not in b:
                    return False
                todo.append((value, b[key]))
    return True


def _ordered(op: str, left: Any, right: Any) -> None:
    if _is_number(left) and _is_number(right):
        return
    if isinstance(left, str) and isinstance(right, str):
        return
    raise CxRuntimeError(f"cannot compare {type_name(left)} and {type_name(right)} with '{op}'")


def lt(left: Any, right: Any) -> bool:
    _ordered("<", left, right)
    return bool(left < right)


def le(left: Any, right: Any) -> bool:
    _ordered("<=", left, right)
    return bool(left <= right)


def gt(left: Any, right: Any) -> bool:
    _ordered(">", left, right)
    return bool(left > right)


def ge(left: Any, right: Any) -> bool:
    _ordered(">=", left, right)
    return bool(left >= right)


# Functions -------------------------------------------------------------------------------------


def now() -> str:
    """The local date and time to the millisecond, ``2026-12-06 14:03:59.123``."""
    return datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def type_of(value: Any) -> str:
    """``typeof(x)``: "null", "boolean", "number", "string", "array", "object", or an entity's
    type name."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Entity):
        return value.type_name
    return "object"


def _milliseconds() -> int:
    return time.time_ns() // 1_000_000


def _parse_json(text: Any) -> Any:
    if not isinstance(text, str):
        raise CxRuntimeError(f"JSON.parse takes a string, got {type_name(text)}")
    try:
        return json.loads(text)
    except RecursionError:
        raise CxRuntimeError("JSON.parse: the text is nested too deeply") from None
    except ValueError as error:  # a JSONDecodeError, or a number of too many digits
        where = f" at character {error.pos}" if isinstance(error, json.JSONDecodeError) else ""
        raise CxRuntimeError(f"JSON.parse: not valid JSON{where}") from None


def _numeric(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``Math.name``, of numbers: anything else is a CX error, not a Python one."""
    def checked(*values: Any) -> Any:
        for value in values:
            if not _is_number(value):
                raise CxRuntimeError(f"Math.{name} takes numbers, got {type_name(value)}")
        try:
            return function(*values)
        except (ValueError, OverflowError):
            return math.nan
    return checked


def _round(x: int | float) -> int | float:
    return math.floor(x + 0.5) if math.isfinite(x) else x


class Moment(Entity):
    """What ``new Date()`` makes: an instant, in milliseconds since 1970, with JavaScript's
    usual methods. It is data like any entity (``print`` writes ``{"time": ...}``)."""

    __slots__ = ()

    def __init__(self, milliseconds: int | float) -> None:
        super().__init__("Date", "", {"time": milliseconds})

    def local(self) -> datetime:
        return datetime.fromtimestamp(self.properties["time"] / 1000)


def new_date(*args: Any) -> Moment:
    """``new Date()`` is now; ``new Date(ms)`` that instant."""
    if not args:
        return Moment(_milliseconds())
    if len(args) > 1 or not _is_number(args[0]) or not math.isfinite(args[0]) \
            or abs(args[0]) > _LAST_MOMENT:
        raise CxRuntimeError("new Date(...) takes nothing (now) or milliseconds since 1970")
    return Moment(args[0])


_LAST_MOMENT = 8.64e15  # JavaScript's: 100,000,000 days either side of 1970
_DATE_METHODS: dict[str, Callable[..., Any]] = {
    "getTime": lambda d: d.properties["time"],
    "toISOString": lambda d: datetime.fromtimestamp(d.properties["time"] / 1000, UTC)
    .strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
    "toLocaleTimeString": lambda d: d.local().strftime("%H:%M:%S"),
    "toLocaleDateString": lambda d: d.local().strftime("%Y-%m-%d"),
    "toString": lambda d: d.local().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
}


LIBRARY: dict[str, dict[str, tuple[int, Callable[..., Any]]]] = {
    "Math": {
        "random": (0, random.random),
        "floor": (1, _numeric("floor", lambda x: math.floor(x) if math.isfinite(x) else x)),
        "ceil": (1, _numeric("ceil", lambda x: math.ceil(x) if math.isfinite(x) else x)),
        "round": (1, _numeric("round", _round)),
        "abs": (1, _numeric("abs", abs)),
        "sqrt": (1, _numeric("sqrt", math.sqrt)),
        "min": (2, _numeric("min", min)),
        "max": (2, _numeric("max", max)),
    },
    "JSON": {"stringify": (1, _json), "parse": (1, _parse_json)},
    "Date": {"now": (0, _milliseconds)},
}
"""JavaScript's standard objects as far as CX has them: ``Math.floor(x)``, ``JSON.parse(s)``,
``Date.now()``. Each entry: the number of arguments, the function."""


# Methods ---------------------------------------------------------------------------------------


def _push(target: list[Any], *items: Any) -> int:
    target.extend(items)
    return len(target)


def _join(target: list[Any], sep: Any = ",") -> str:
    return display(sep).join(display(x) for x in target)


def _index_of(target: list[Any] | str, item: Any) -> int:
    if isinstance(target, str):
        return target.find(display(item))
    return next((i for i, x in enumerate(target) if eq(x, item)), -1)


def _includes(target: list[Any] | str, item: Any) -> bool:
    return _index_of(target, item) >= 0


def _slice(target: list[Any] | str, start: int = 0, end: int | None = None) -> Any:
    return target[start:end]


def _substring(target: str, start: Any, end: Any = None) -> str:
    """JavaScript's ``substring``: bounds clamped to the string, swapped when reversed."""
    size = len(target)
    first = min(max(_position(start), 0), size)
    last = size if end is None else min(max(_position(end), 0), size)
    return target[min(first, last):max(first, last)]


def _position(value: Any) -> int:
    if not _is_number(value) or (isinstance(value, float) and math.isnan(value)):
        raise CxRuntimeError(f"a position must be a number, got {display(value)}")
    return int(value) if math.isfinite(value) else (1 << 62) * (1 if value > 0 else -1)


_LIST_METHODS: dict[str, Callable[..., Any]] = {
    "push": _push,
    "pop": lambda t: t.pop() if t else None,
    "join": _join,
    "includes": _includes,
    "indexOf": _index_of,
    "slice": _slice,
}
_STRING_METHODS: dict[str, Callable[..., Any]] = {
    "toUpperCase": str.upper,
    "toLowerCase": str.lower,
    "trim": str.strip,
    "split": lambda s, sep=None: s.split(sep) if sep else list(s),
    "startsWith": lambda s, p: s.startswith(display(p)),
    "endsWith": lambda s, p: s.endswith(display(p)),
    "replace": lambda s, old, new: s.replace(display(old), display(new)),
    "includes": _includes,
    "indexOf": _index_of,
    "slice": _slice,
    "substring": _substring,
}
_OBJECT_METHODS: dict[str, Callable[..., Any]] = {
    "keys": list,
    "values": lambda o: list(o.values()),
    "has": lambda o, k: (k if isinstance(k, str) else display(k)) in o,
}


def call_method(target: Any, name: str, args: list[Any]) -> Any:
    """``target.name(args)``: the few methods CX values have; nothing else is callable."""
    table: dict[str, Callable[..., Any]]
    if isinstance(target, list):
        table = _LIST_METHODS
    elif isinstance(target, str):
        table = _STRING_METHODS
    elif isinstance(target, dict):
        table = _OBJECT_METHODS
    elif type(target) is Moment:
        table = _DATE_METHODS
    elif isinstance(target, Entity):
        table, target = _OBJECT_METHODS, target.properties
    else:
        raise CxRuntimeError(f"{type_name(target)} has no method {name!r}")
    method = table.get(name)
    if method is None:
        known = ", ".join(sorted(table))
        raise CxRuntimeError(f"{type_name(target)} has no method {name!r} (it has: {known})")
    try:
        return method(target, *args)
    except TypeError:
        raise CxRuntimeError(f"wrong arguments for {name}(): {len(args)} given") from None


PRELUDE: dict[str, Any] = {
    "cx_get": get,
    "cx_set": set_,
    "cx_index": index,
    "cx_set_index": set_index,
    "cx_iter": iterate,
    "cx_truthy": truthy,
    "cx_add": add,
    "cx_sub": sub,
    "cx_mul": mul,
    "cx_div": div,
    "cx_mod": mod,
    "cx_neg": neg,
    "cx_increment": increment,
    "cx_eq": eq,
    "cx_lt": lt,
    "cx_le": le,
    "cx_gt": gt,
    "cx_ge": ge,
    "cx_method": call_method,
    "cx_payload": payload_of,
    "cx_now": now,
    "cx_typeof": type_of,
    "cx_new_Date": new_date,
    **{f"cx_{namespace}_{name}": function for namespace, functions in LIBRARY.items()
       for name, (_, function) in functions.items()},
    # For the code generator's inlined fast path of whole-number arithmetic, nothing else.
    "cx_type": type,
    "cx_int": int,
}
"""The names compiled code may call, as the code generator spells them."""


INTERRUPTIBLE: frozenset[CodeType] = frozenset(
    f.__code__ for f in (_json, _containers_equal))
"""The prelude's loops whose work grows with a value's size, not the program's steps (writing
or comparing a value): the time and memory limits may stop the run at any of their lines, as at
the program's own (each line leaves nothing half done)."""


# Size limits -----------------------------------------------------------------------------------

_SLOT = 8  # bytes a number, boolean, null or array element counts for


def size_of(value: Any, limit: int) -> int:
    """About how many bytes *value* holds: a string one a character, an array or object
    :data:`_SLOT` an element plus its contents (and an object its keys). Stops counting once
    past *limit*, so a huge or self-containing value costs no more than the limit to measure."""
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, list | tuple):
            total += _SLOT * len(item)
            stack.extend(item)
        elif isinstance(item, dict | Entity):
            properties = item.properties if isinstance(item, Entity) else item
            total += _SLOT * len(properties) + sum(len(str(k)) for k in properties)
            stack.extend(properties.values())
        else:
            total += _SLOT
    return total


def too_large(what: str, size: int, limit: int) -> LimitExceeded:
    return LimitExceeded("payload", f"{what} of about {size:,} bytes (the limit is {limit:,})",
                         limit)


def bounded_prelude(max_size: int) -> dict[str, Any]:
    """:data:`PRELUDE` with the operations that grow values refusing to build one larger than
    *max_size* bytes (as :func:`size_of` counts, shallowly): ``+``, ``a[i] = x`` past the end,
    and the methods (``push``, ``join``, ``replace``, ...). Whole-number arithmetic, which the
    code generator inlines, is left to the memory limit."""

    def check(value: Any) -> Any:
        if type(value) is str:
            if len(value) > max_size:
                raise too_large("a string", len(value), max_size)
        elif type(value) is list and _SLOT * len(value) > max_size:
            raise too_large("an array", _SLOT * len(value), max_size)
        return value

    def add_bounded(left: Any, right: Any) -> Any:
        return check(add(left, right))

    def method_bounded(target: Any, name: str, args: list[Any]) -> Any:
        # join, replace and split could build a huge value in one step, far past the limit
        # (a long separator repeated per element, a replacement inserted at every character):
        # refuse it from its size, computed before anything is built.
        if name == "join" and type(target) is list:
            sep = display(args[0]) if args else ","
            joined = sum(len(x) if type(x) is str else size_of(x, max_size) for x in target) \
                + len(sep) * max(len(target) - 1, 0)
            if joined > max_size:
                raise too_large("a string", joined, max_size)
        elif name == "replace" and type(target) is str and len(args) == 2:
            old, new = display(args[0]), display(args[1])
            if len(new) > len(old):  # an empty *old* matches at every character, and the end
                grown = len(target) + target.count(old) * (len(new) - len(old))
                if grown > max_size:
                    raise too_large("a string", grown, max_size)
        elif name == "split" and type(target) is str:
            pieces = len(target)  # no separator: its characters
            if args and type(args[0]) is str and args[0]:
                pieces = target.count(args[0]) + 1
            if _SLOT * pieces > max_size:
                raise too_large("an array", _SLOT * pieces, max_size)
        result = call_method(target, name, args)
        if type(target) is list:
            check(target)  # push grows it in place
        return check(result)

    def set_index_bounded(target: Any, key: Any, value: Any) -> Any:
        set_index(target, key, value)
        if type(target) is list:
            check(target)
        return value

    return {**PRELUDE, "cx_add": add_bounded, "cx_method": method_bounded,
            "cx_set_index": set_index_bounded}
