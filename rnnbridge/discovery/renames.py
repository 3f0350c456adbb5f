"""Names a file does not use: map the file's own array names onto a framework's names.

A file of bare arrays named by its author (``enc_w_ih``, ``dec_bias``) cannot tell which
tensor is which. The ``names`` field renames them before the layers are looked for, so
that ``enc_w_ih`` → ``encoder.weight_ih_l0`` makes it a PyTorch ``nn.LSTM`` tensor. It is
a JSON object ``{"enc_w_ih": "encoder.weight_ih_l0", ...}`` or a list of ``old=new`` pairs
separated by commas or new lines. Every old name must be in the file and no two arrays may
end up with one name: a rename that matches nothing is a typo, reported, not ignored.

When the layers are not found, :func:`fused_candidates` lists the arrays whose shapes look
like fused gate tensors (an LSTM's ``[4H, H]`` recurrent matrix, a GRU's ``[3H, …]``, the
``[…, 4H]`` column forms, biases of 4H / 8H / 3H / 6H), so ``/inspect`` can say how to name
them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from rnnbridge.errors import InvalidField, RnnBridgeError
from rnnbridge.formats.base import WeightFile
from rnnbridge.formats.json_arrays import loads_bounded

MAX_RENAMES = 10_000


def parse_names(text: str | Mapping[str, str]) -> dict[str, str]:
    """The ``names`` field as ``{old: new}``: a mapping, a JSON object, or ``old=new`` pairs.

    >>> parse_names("enc_w_ih=encoder.weight_ih_l0, enc_w_hh = encoder.weight_hh_l0")
    {'enc_w_ih': 'encoder.weight_ih_l0', 'enc_w_hh': 'encoder.weight_hh_l0'}
    """
    if isinstance(text, Mapping):
        pairs = dict(text)
    elif text.lstrip().startswith("{"):
        try:
            pairs = loads_bounded(text, what="the names field", max_depth=2)
        except RnnBridgeError as exc:
            raise InvalidField(f"names is not a valid JSON object: {exc.detail}", field="names") from None
    else:
        pairs = {}
        for item in text.replace("\n", ",").split(","):
            if not item.strip():
                continue
            old, sep, new = item.partition("=")
            if not sep:
                raise InvalidField(f"names entry {item.strip()[:100]!r} is not old=new", field="names")
            pairs[old.strip()] = new.strip()
    if not isinstance(pairs, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in pairs.items()):
        raise InvalidField("names must map array names to array names (strings)", field="names")
    if len(pairs) > MAX_RENAMES:
        raise InvalidField(f"names has {len(pairs)} entries, more than {MAX_RENAMES}", field="names")
    if any(not new for new in pairs.values()):
        raise InvalidField("names may not map an array to an empty name", field="names")
    return pairs


def apply_names(weights: WeightFile, names: Mapping[str, str]) -> None:
    """Rename ``weights``' arrays in place, in their order; refuse unknown or colliding names."""
    unknown = sorted(set(names) - set(weights.tensors))
    if unknown:
        have = sorted(weights.tensors)[:20]
        raise InvalidField(
            f"names renames {unknown[:10]}, which the file does not hold; its arrays are {have}"
            + (" ..." if len(weights.tensors) > 20 else ""),
            field="names",
        )
    renamed = {names.get(name, name): name for name in weights.tensors}
    if len(renamed) != len(weights.tensors):
        seen: dict[str, str] = {}
        for name in weights.tensors:
            new = names.get(name, name)
            if new in seen:
                raise InvalidField(f"names gives {seen[new]!r} and {name!r} the same name {new!r}", field="names")
            seen[new] = name
    weights.tensors = {new: weights.tensors[old] for new, old in renamed.items()}
    weights.bfloat16 = {names.get(name, name) for name in weights.bfloat16}
    weights.notes.append(f"{len(names)} array(s) renamed by the names field")


#: how to name each kind of fused tensor, per framework whose finder reads bare arrays
_ROLES = {
    ("row", "recurrent"): {"pytorch": "<module>.weight_hh_l0", "onnx": "R (direction axis first: [D, G·H, H])"},
    ("row", "input"): {"pytorch": "<module>.weight_ih_l0", "onnx": "W (direction axis first: [D, G·H, I])"},
    ("column", "recurrent"): {"keras": "<layer>/recurrent_kernel"},
    ("column", "input"): {"keras": "<layer>/kernel"},
}
HOW_TO_NAME = (
    "rnnbridge finds layers by their framework's tensor names. Rename these arrays with the names "
    'field (a JSON object {"name in the file": "framework name"} or old=new pairs) and say the '
    "framework with source=; name_it gives each array's name per framework."
)


def fused_candidates(tensors: Mapping[str, np.ndarray]) -> list[dict[str, object]]:
    """Arrays whose shapes look like fused LSTM/GRU gate tensors: what they may be and how to name them."""
    out: list[dict[str, object]] = []
    for name, array in tensors.items():
        guess = _guess(array.shape)
        if guess is not None:
            form, role, cell, units = guess
            out.append(
                {
                    "name": name,
                    "shape": list(array.shape),
                    "looks_like": f"{cell.upper()} {role} {'[G·H, …]' if form == 'row' else '[…, G·H]'} with H={units}",
                    "name_it": _ROLES[(form, role)],
                }
            )
    return out


def _guess(shape: tuple[int, ...]) -> tuple[str, str, str, int] | None:
    """(form, role, cell, H) for a 2-D shape a fused gate tensor has, else None.

    A recurrent matrix is exact: [4H, H] / [3H, H] (row form) or [H, 4H] / [H, 3H]
    (column form). An input matrix is only plausible: one side a multiple of 4 or 3.
    """
    if len(shape) != 2 or 0 in shape:
        return None
    rows, cols = shape
    for gates, cell in ((4, "lstm"), (3, "gru")):
        if rows == gates * cols:
            return "row", "recurrent", cell, cols
        if cols == gates * rows:
            return "column", "recurrent", cell, rows
    for gates, cell in ((4, "lstm"), (3, "gru")):
        if rows % gates == 0 and rows > cols:
            return "row", "input", cell, rows // gates
        if cols % gates == 0 and cols > rows:
            return "column", "input", cell, cols // gates
    return None
