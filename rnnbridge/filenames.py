"""Default names of the files rnnbridge writes (the CLI's output, the service's download).

``<stem>.gates.<ext>`` for split arrays and ``<stem>.to-<target>.<ext>`` for converted ones,
where ``<stem>`` is the first input's name without the extensions of the weight files rnnbridge
reads (``model.ckpt.index`` and ``m.weights.h5`` both give ``model``/``m``). So no output looks
like a file of another kind: not ``m.keras.npz`` (which reads as a ``.keras`` model) nor
``model.ckpt.pytorch.npz``. Each format's extension is its entry in the output registry
(``rnnbridge.outputs.OUTPUTS``, which names files through :func:`file_name`): Keras HDF5 outputs
end in ``.weights.h5``, the only name Keras 3's ``model.load_weights`` accepts.
"""

from __future__ import annotations

import re

#: extensions of the inputs, removed from the stem (repeatedly: ``model.ckpt.index``)
_INPUT_SUFFIX = re.compile(
    r"\.(?:h5|hdf5|keras|weights|pt|pth|bin|ckpt|index|meta|data-\d{5}-of-\d{5}|onnx|safetensors|npz|json|zip|tar|gz|tgz)$",
    re.IGNORECASE,
)


def stem(first_input: str) -> str:
    """``first_input``'s file name without directories and weight-file extensions.

    >>> stem("dir/model.ckpt.index"), stem("m.weights.h5"), stem("run.v2.pt"), stem(".h5")
    ('model', 'm', 'run.v2', 'weights')
    """
    name = first_input.replace("\\", "/").rsplit("/", 1)[-1]
    while True:
        shorter = _INPUT_SUFFIX.sub("", name)
        if shorter == name or not shorter.strip("."):
            break
        name = shorter
    name = name.lstrip(".")
    return name if name and not _INPUT_SUFFIX.fullmatch("." + name) else "weights"


def file_name(first_input: str, extension: str, target: str | None = None) -> str:
    """The default output file name (see the module), ending in ``extension``.

    >>> file_name("dir/model.h5", "npz"), file_name("m.keras", "json", "pytorch")
    ('model.gates.npz', 'm.to-pytorch.json')
    >>> file_name("m.h5", "npz", "keras"), file_name("m.h5", "weights.h5", "keras")
    ('m.to-keras.npz', 'm.to-keras.weights.h5')
    """
    kind = f"to-{target}" if target else "gates"
    return f"{stem(first_input)}.{kind}.{extension}"
