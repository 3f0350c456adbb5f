"""Which tensors of an unpickled ``torch.save`` object are the weights, under which names.

The object may be a state_dict or a checkpoint dict: the first of ``state_dict``,
``model_state_dict``, ``model``, ``net``, ``module`` that holds tensors is used,
otherwise nested dicts are flattened with "." (non-tensor leaves are ignored and
reported). A ``module.`` prefix on every key (DataParallel) can be stripped. The walk is
bounded in depth and in the number of nodes visited.
"""

from __future__ import annotations

from dataclasses import dataclass

from rnnbridge.errors import MalformedFile, UnsupportedFormat
from rnnbridge.formats.base import quote
from rnnbridge.formats.torch.unpickler import Tensor

_MAX_DEPTH = 64
_MAX_NODES = 1_000_000
_CONTAINER_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")


@dataclass
class _Walk:
    tensors: dict[str, Tensor]
    ignored: list[str]
    nodes: int = 0


def _join(prefix: str, key: object) -> str | None:
    if isinstance(key, bool) or not isinstance(key, (str, int)):
        return None
    return f"{prefix}.{key}" if prefix else str(key)


def _walk(node: object, path: str, walk: _Walk, depth: int) -> bool:
    """Add the tensors under ``node`` to ``walk``; return whether there were any."""
    walk.nodes += 1
    if walk.nodes > _MAX_NODES or depth > _MAX_DEPTH:
        raise MalformedFile(
            f"the pickled object is nested deeper than {_MAX_DEPTH} levels "
            f"or has more than {_MAX_NODES} entries (at {quote(path)})"
        )
    if isinstance(node, Tensor):
        if path in walk.tensors:
            raise MalformedFile(f"two tensors are named {quote(path)}", tensor=path)
        walk.tensors[path] = node
        return True
    if not isinstance(node, dict):
        walk.ignored.append(path)
        return False
    ignored_before = len(walk.ignored)
    found = False
    for key, value in node.items():
        child = _join(path, key)
        if child is None:
            walk.ignored.append(f"{path}[{key!r:.50}]")
        else:
            found = _walk(value, child, walk, depth + 1) or found
    if not found and path:
        del walk.ignored[ignored_before:]  # one entry for a subtree without tensors
        walk.ignored.append(path)
    return found


def _flatten(node: object) -> _Walk:
    walk = _Walk({}, [])
    _walk(node, "", walk, 0)
    return walk


def select(obj: object) -> tuple[dict[str, Tensor], str | None, list[str]]:
    """The tensors to read, the checkpoint key they came from, and what was ignored."""
    if not isinstance(obj, dict):
        what = "single tensor" if isinstance(obj, Tensor) else type(obj).__name__
        raise UnsupportedFormat(f"the file holds a {what}, not a state_dict or checkpoint dict")
    for key in _CONTAINER_KEYS:
        if isinstance(obj.get(key), dict):
            walk = _flatten(obj[key])
            if walk.tensors:
                others = [str(k) for k in obj if k != key]
                return walk.tensors, key, others + walk.ignored
    walk = _flatten(obj)
    return walk.tensors, None, walk.ignored


def strip_module_prefix(tensors: dict[str, Tensor]) -> bool:
    """Remove ``module.`` from every name in place if all have it; return whether done."""
    prefix = "module."
    if not tensors or not all(name.startswith(prefix) for name in tensors):
        return False
    stripped = {name[len(prefix) :]: t for name, t in tensors.items()}
    tensors.clear()
    tensors.update(stripped)
    return True
