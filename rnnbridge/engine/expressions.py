"""Array expressions that /explain prints: a slice of a stored tensor, transposed or
reshaped, summed with others and shifted by constants, rendered for NumPy, PyTorch and
TensorFlow.

An ``Expr`` is built from the registry's layout data only (``rnnbridge.engine.layout``), and
its NumPy rendering is evaluated in the tests on the file's arrays, so that what we print
is what /split and /convert compute, bit for bit. Operations are kept in the order the
engine performs them (``(b_x + forget_bias) + b_h - target_forget_bias``): floating-point
addition is not associative.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

#: the dialects a snippet is written in
DIALECTS = ("numpy", "torch", "tensorflow")

Index = tuple[int | slice, ...]


@dataclass(frozen=True)
class Slice:
    """``variable[index]`` followed by ``ops``: ``"T"`` (transpose) or ``"R"`` (read the
    C-order values with the shape ``reshape``). ``variable=None`` is a block of zeros of
    ``shape`` (a bias the source does not store)."""

    variable: str | None
    index: Index = ()
    stored_shape: tuple[int, ...] = ()
    ops: tuple[str, ...] = ()
    reshape: tuple[int, ...] = ()
    shape: tuple[int, ...] = ()

    def then(self, op: str, shape: tuple[int, ...] = ()) -> Slice:
        """This slice followed by ``op``; two transposes in a row cancel."""
        if op == "N":
            return self
        if op == "T" and self.ops[-1:] == ("T",):
            return replace(self, ops=self.ops[:-1], shape=self.shape[::-1])
        if op == "T":
            return replace(self, ops=(*self.ops, "T"), shape=self.shape[::-1])
        return replace(self, ops=(*self.ops, "R"), reshape=shape, shape=shape)

    @property
    def transposed(self) -> bool:
        return "T" in self.ops


@dataclass(frozen=True)
class Expr:
    """``first``, then each ``(sign, operand)`` of ``rest`` applied left to right; an
    operand is a ``Slice`` or a float constant (cast to ``dtype``). ``negated``: the whole
    sum is negated (a block a convention stores negated, Haiku's GRU ``z``: an exact sign flip)."""

    first: Slice
    dtype: str
    rest: tuple[tuple[str, Slice | float], ...] = field(default=())
    negated: bool = False

    def negate(self) -> Expr:
        return replace(self, negated=not self.negated)

    def plus(self, operand: Slice | float, sign: str = "+") -> Expr:
        return replace(self, rest=(*self.rest, (sign, operand)))

    def then(self, op: str, shape: tuple[int, ...] = ()) -> Expr:
        """Apply a transform to every operand (a sum of blocks transposes term by term)."""
        rest = tuple((s, o.then(op, shape) if isinstance(o, Slice) else o) for s, o in self.rest)
        return replace(self, first=self.first.then(op, shape), rest=rest)

    def slices(self) -> list[Slice]:
        return [self.first] + [o for _, o in self.rest if isinstance(o, Slice)]

    def constants(self) -> list[float]:
        return [(o if s == "+" else -o) for s, o in self.rest if not isinstance(o, Slice)]

    def render(self, dialect: str = "numpy") -> str:
        text = render_slice(self.first, self.dtype, dialect)
        for sign, operand in self.rest:
            if isinstance(operand, Slice):
                text += f" {sign} {render_slice(operand, self.dtype, dialect)}"
            else:
                text += f" {sign} {_constant(operand, self.dtype, dialect)}"
        return f"-({text})" if self.negated else text


def render_index(index: Index, shape: tuple[int, ...]) -> str:
    """``[1, :5, 10:20]``: integers as they are, a whole axis as ``:``, a start of 0 left out."""
    parts = []
    for item, length in zip(index, shape):
        if isinstance(item, int):
            parts.append(str(item))
        elif item.start in (0, None) and item.stop in (length, None):
            parts.append(":")
        else:
            start = "" if item.start in (0, None) else str(item.start)
            parts.append(f"{start}:{item.stop}")
    return "[" + ", ".join(parts) + "]"


def render_slice(piece: Slice, dtype: str, dialect: str) -> str:
    if piece.variable is None:
        return _zeros(piece.shape, dtype, dialect)
    text = piece.variable + render_index(piece.index, piece.stored_shape)
    for op in piece.ops:
        if op == "T":
            text = f"tf.transpose({text})" if dialect == "tensorflow" else f"{text}.T"
        elif dialect == "tensorflow":
            text = f"tf.reshape({text}, {list(piece.reshape)})"
        else:
            text = f"{text}.reshape({', '.join(map(str, piece.reshape))})"
    return text


def _zeros(shape: tuple[int, ...], dtype: str, dialect: str) -> str:
    size = ", ".join(map(str, shape))
    if dialect == "torch":
        return f"torch.zeros({size}, dtype=torch.{dtype})"
    if dialect == "tensorflow":
        return f"tf.zeros({list(shape)}, dtype=tf.{dtype})"
    return f"np.zeros({size}, dtype=np.{dtype})"


def _constant(value: float, dtype: str, dialect: str) -> str:
    """A scalar of the arrays' dtype (PyTorch and TensorFlow cast a Python float to it)."""
    return f"np.{dtype}({value!r})" if dialect == "numpy" else repr(value)


def empty(name: str, shape: tuple[int, ...], dtype: str, dialect: str) -> str:
    """``name = <an uninitialised tensor of shape and dtype>`` (every element is assigned after)."""
    if dialect == "torch":
        return f"{name} = torch.empty({', '.join(map(str, shape))}, dtype=torch.{dtype})"
    if dialect == "tensorflow":
        return f"{name} = np.empty({shape!r}, dtype=np.{dtype})  # filled below, then tf.constant({name})"
    return f"{name} = np.empty({shape!r}, dtype=np.{dtype})"


def identifier(name: str) -> str:
    """A Python identifier for a stored tensor's role (``gates/kernel`` -> ``gates_kernel``)."""
    text = "".join(c if c.isalnum() else "_" for c in name)
    return text if text[:1].isalpha() else f"t_{text}"
