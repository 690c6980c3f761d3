"""The one state of every stateful part of the core, and its bytes.

Every agent, the regime detector and the committee follow one step protocol:

* ``init(params) -> State`` (the committee: ``init(symbols, params)``);
* ``step(state, bar) -> (state, output)`` — one closed bar: a :class:`~coinswarm.agents.base.Bar`
  for single-asset components, a tuple of bars (one per symbol, in the state's order; the
  committee also takes ``{symbol: bar}``) for the multi-symbol ones, and for the carry trade
  ``(spot Bar, perpetual FundingBar)``. ``step`` advances ``state`` in place (no copy per bar)
  and returns it; a malformed bar, or a bar not newer than the last one taken, raises a typed
  :class:`~coinswarm.errors.DataError` and changes nothing;
* ``run(history)`` — the compiled scan of the same step over history, bit-identical to a loop
  of ``step`` (see :func:`scan`).

A :class:`State` holds the component's typed parameters, its whole memory as ``float64``
arrays (what the compiled kernels read and write), its bar clock (the open time of the last
bar taken) and the layout it follows. ``state.to_bytes()`` and ``State.from_bytes(blob)``
persist it; a blob written by another format or layout version is refused with a
:class:`~coinswarm.errors.StaleStateError`, a damaged one with a
:class:`~coinswarm.errors.StateError`.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import struct
import zlib
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import numpy as np

from coinswarm.errors import StaleStateError, StateError

STATE_FORMAT = 1  # the blob's own layout; a component's array layout is versioned by ``State.layout``
_MAGIC = b"CSSTATE\0"
_HEAD = struct.Struct("<8sII")  # magic, format, header length
_CRC = struct.Struct("<I")
_DTYPES = ("<f8", "<i8")


def layout_id(name: str, version: int, *config: Any) -> str:
    """``"<name>-v<version>"``, plus a digest of the component's fixed configuration (what its
    arrays' meaning depends on besides the params), e.g. ``"committee-v1-3f2a9c01d4e7"``."""
    if not config:
        return f"{name}-v{version}"
    return f"{name}-v{version}-{hashlib.sha1(repr(config).encode()).hexdigest()[:12]}"


class State(NamedTuple):
    """A stateful component's parameters, memory and bar clock.

    Attributes
    ----------
    params : NamedTuple
        The component's typed parameters.
    values : ndarray or tuple of ndarray
        Its whole memory: one ``float64`` array (agents, the regime detector) or a tuple of
        them (the committee: regime, trend, mean reversion, weights, last votes, scalars, pair,
        risk, execution). The compiled kernels advance it in place.
    clock : ndarray
        ``int64`` of shape ``(1,)``: the open time (epoch ms) of the last bar taken, -1 before
        the first.
    symbols : tuple of str
        The symbols, in the order bars are given (multi-symbol components; empty otherwise).
    layout : str
        Which component and which version of its array layout (:func:`layout_id`); ``step``
        refuses a state of another layout.
    """

    params: Any
    values: Any
    clock: np.ndarray
    symbols: tuple[str, ...] = ()
    layout: str = ""

    @property
    def arrays(self) -> tuple[np.ndarray, ...]:
        """``values`` as a tuple of arrays (the committee's name for them)."""
        return self.values if isinstance(self.values, tuple) else (self.values,)

    @property
    def time(self) -> int:
        """Open time (epoch ms) of the last bar taken; -1 before the first."""
        return int(self.clock[0])

    def copy(self) -> State:
        """A snapshot: the same state in new arrays (``step`` advances a state in place)."""
        values = tuple(a.copy() for a in self.values) if isinstance(self.values, tuple) else self.values.copy()
        return self._replace(values=values, clock=self.clock.copy())

    def to_bytes(self) -> bytes:
        """The state as bytes: a versioned header (layout, params, symbols, clock, array
        shapes), the arrays' raw little-endian bytes and a CRC-32 (:meth:`from_bytes` reads it)."""
        arrays = [np.ascontiguousarray(a) for a in self.arrays]
        header = json.dumps({
            "layout": self.layout,
            "params": _params_record(self.params),
            "symbols": list(self.symbols),
            "clock": int(self.clock[0]),
            "tuple": isinstance(self.values, tuple),
            "arrays": [[a.dtype.newbyteorder("<").str, list(a.shape)] for a in arrays],
        }, allow_nan=True).encode()
        body = b"".join([_HEAD.pack(_MAGIC, STATE_FORMAT, len(header)), header,
                         *(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes() for a in arrays)])
        return body + _CRC.pack(zlib.crc32(body))

    @classmethod
    def from_bytes(cls, blob: bytes) -> State:
        """The state :meth:`to_bytes` wrote, in fresh writable arrays.

        Raises
        ------
        StaleStateError
            The blob was written in another format version.
        StateError
            It is not a coinswarm state, is truncated or damaged (CRC), or names parameters
            that are not a coinswarm parameter type.
        """
        blob = bytes(blob) if isinstance(blob, bytearray | memoryview) else blob
        if not isinstance(blob, bytes) or len(blob) < _HEAD.size + _CRC.size:
            raise StateError(f"a state blob is bytes of at least {_HEAD.size + _CRC.size} bytes, got "
                             f"{type(blob).__name__} of length {len(blob) if hasattr(blob, '__len__') else '?'}")
        magic, fmt, size = _HEAD.unpack_from(blob)
        if magic != _MAGIC:
            raise StateError(f"not a coinswarm state (starts with {magic!r}, expected {_MAGIC!r})")
        if fmt != STATE_FORMAT:
            raise StaleStateError(f"state blob of format {fmt}; this coinswarm reads format {STATE_FORMAT}: "
                                  "re-initialise the component (init, then replay its warm-up bars)")
        if zlib.crc32(blob[:-_CRC.size]) != _CRC.unpack_from(blob, len(blob) - _CRC.size)[0]:
            raise StateError(f"state blob damaged: CRC-32 mismatch over its {len(blob)} bytes")
        try:
            header = json.loads(blob[_HEAD.size:_HEAD.size + size])
            arrays, offset = [], _HEAD.size + size
            for dtype, shape in header["arrays"]:
                if dtype not in _DTYPES or not all(isinstance(d, int) and d >= 0 for d in shape):
                    raise StateError(f"state blob malformed: array of {dtype} {shape} (arrays are float64 or "
                                     "int64 with non-negative dimensions)")
                count = int(np.prod(shape, dtype=np.int64))
                arrays.append(np.frombuffer(blob, dtype=np.dtype(dtype), count=count, offset=offset)
                              .astype(np.dtype(dtype).newbyteorder("="), copy=True).reshape(shape))
                offset += arrays[-1].nbytes
            if offset != len(blob) - _CRC.size or (not header["tuple"] and len(arrays) != 1):
                raise StateError(f"state blob malformed: its arrays take {offset - _HEAD.size - size} of the "
                                 f"{len(blob) - _CRC.size - _HEAD.size - size} payload bytes")
            params = _params_value(header["params"])
            values = tuple(arrays) if header["tuple"] else arrays[0]
            return cls(params, values, np.array([header["clock"]], dtype=np.int64), tuple(header["symbols"]),
                       header["layout"])
        except StateError:
            raise
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise StateError(f"state blob malformed: {type(exc).__name__}: {exc}") from None


_SHAPES: dict[tuple, tuple] = {}  # (layout, params, symbols) → the arrays' shapes a fresh state has


def check_layout(state: Any, layout: str, name: str, fresh: Callable[[], State] | None = None) -> None:
    """Refuse a state that is not a :class:`State` of ``layout`` (component ``name``): a
    :class:`~coinswarm.errors.StaleStateError` for another version or configuration, a
    :class:`~coinswarm.errors.StateError` for what is not a state at all or whose arrays are
    not ``float64`` of the shapes ``fresh()`` (a new state for the same params and symbols)
    has — the kernels index them without bounds checks."""
    if not isinstance(state, State):
        raise StateError(f"{name}.step takes the State {name}.init returns, not {type(state).__name__}")
    if state.layout != layout:
        raise StaleStateError(f"{name}: state of layout {state.layout!r}, this component needs {layout!r} "
                              "(another component, version or configuration); re-initialise it")
    if fresh is None:
        return
    key = (layout, state.params, state.symbols)
    shapes = _SHAPES.get(key)
    if shapes is None:
        if len(_SHAPES) >= 256:
            _SHAPES.clear()
        model = fresh()
        shapes = _SHAPES[key] = (isinstance(model.values, tuple), *((a.shape, a.dtype) for a in model.arrays))
    arrays = state.arrays
    if (isinstance(state.values, tuple) != shapes[0] or len(arrays) != len(shapes) - 1
            or any((a.shape, a.dtype) != s for a, s in zip(arrays, shapes[1:], strict=False))):
        raise StateError(f"{name}: state arrays {[(a.shape, str(a.dtype)) for a in arrays]} do not fit its params "
                         f"and symbols (expected {[(s, str(d)) for s, d in shapes[1:]]})")
    if state.clock.shape != (1,) or state.clock.dtype != np.int64:
        raise StateError(f"{name}: the bar clock is {state.clock!r}, not one int64")


def scan(step: Callable, state: State, bars: Iterable) -> tuple[State, list]:
    """``step`` over ``bars`` in order: ``(state after the last bar, outputs)`` — what a
    component's compiled ``run`` computes (a replay, e.g. a live runner's warm-up)."""
    outputs = []
    for bar in bars:
        state, output = step(state, bar)
        outputs.append(output)
    return state, outputs


def _params_record(params: Any) -> dict:
    """A NamedTuple of numbers (possibly nested) as JSON-ready ``{"type", "fields"}``."""
    if not hasattr(params, "_fields"):
        raise StateError(f"state params must be a parameter NamedTuple, not {type(params).__name__}")
    fields = {}
    for name, value in zip(params._fields, params, strict=True):
        if hasattr(value, "_fields"):
            fields[name] = _params_record(value)
        elif isinstance(value, bool | int | float | str | np.generic):
            fields[name] = value.item() if isinstance(value, np.generic) else value
        else:
            raise StateError(f"state params field {name!r} is a {type(value).__name__}, not a number")
    kind = type(params)
    return {"type": f"{kind.__module__}:{kind.__qualname__}", "fields": fields}


def _params_value(record: dict) -> Any:
    """Rebuild what :func:`_params_record` wrote (only coinswarm's own parameter types)."""
    module, _, qualname = record["type"].partition(":")
    if module != "coinswarm" and not module.startswith("coinswarm."):
        raise StateError(f"state params of type {record['type']!r}: only coinswarm parameter types are restored")
    try:
        kind = getattr(importlib.import_module(module), qualname)
    except (ImportError, AttributeError):
        raise StateError(f"state params of type {record['type']!r}, which this coinswarm does not define") from None
    if not (isinstance(kind, type) and issubclass(kind, tuple) and hasattr(kind, "_fields")):
        raise StateError(f"state params of type {record['type']!r} is not a parameter NamedTuple")
    fields = {k: _params_value(v) if isinstance(v, dict) else v for k, v in record["fields"].items()}
    for k, v in fields.items():
        if not isinstance(v, int | float | str | tuple):
            raise StateError(f"state params field {k!r} is {v!r}, not a number")
    if set(fields) != set(kind._fields):
        raise StaleStateError(f"state params {sorted(fields)} do not match {qualname}'s fields "
                              f"{sorted(kind._fields)}: written by another version")
    return kind(**fields)
