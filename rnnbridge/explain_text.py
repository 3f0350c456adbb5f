"""The /explain document as text for a person (``format=text``, the CLI's default)."""

from __future__ import annotations

from typing import Any


def render(doc: dict[str, Any], *, snippets: tuple[str, ...] = ("numpy",)) -> str:
    """Every layer's equations, stored tensors, gate expressions, target recipe and the
    snippets named in ``snippets`` (``numpy``, ``torch``, ``tensorflow``)."""
    out: list[str] = []
    for layer in doc["layers"]:
        out += _layer(layer, doc["orientation"], snippets)
    out += [f"note: {note}" for note in doc.get("notes", [])]
    return "\n".join(out) + "\n"


def _layer(layer: dict[str, Any], orientation: str, snippets: tuple[str, ...]) -> list[str]:
    letters = " ".join(f"{g}->{n}" for g, n in layer["letters"].items() if g != n)
    lines = [f"layer {layer['name']!r}: {layer['convention']} ({layer['native']})", ""]
    lines.append("  equations, in the framework's gate letters" + (f" (canonical {letters})" if letters else "") + ":")
    lines += [f"    {eq}" for eq in layer["equations"]]
    lines += ["", "  stored tensors:"]
    seen = set()
    for cell in layer["cells"]:
        for tensor in cell["tensors"]:
            if tensor["variable"] in seen:
                continue
            seen.add(tensor["variable"])
            gates = " ".join(tensor["gates"]) or "-"
            lines.append(
                f"    {tensor['variable']} = {tensor['name']!r}  {tensor['shape']}  "
                f"gates {gates} along axis {tensor['gate_axis']}"
            )
    form = "[H, in], for W·x" if orientation == "out_in" else "[in, H], for x·W"
    for cell in layer["cells"]:
        sizes = ", ".join(f"{k}={v}" for k, v in cell["sizes"].items())
        lines += ["", f"  level {cell['level']} {cell['direction']} ({sizes}, {cell['dtype']}; matrices {form}):"]
        width = max(len(g["array"]) for g in cell["gates"])
        for gate in cell["gates"]:
            letter = f"  ({gate['letter']})" if gate["letter"] and gate["letter"] != gate["gate"] else ""
            lines.append(f"    {gate['array']:<{width}}  {str(gate['shape']):<9} = {gate['numpy']}{letter}")
    target = layer.get("target")
    if target:
        lines += [""] + _target(target)
    for dialect in snippets:
        lines += ["", f"  {dialect} (split by hand):"] + [
            f"    {line}" for line in layer["snippets"][dialect].splitlines()
        ]
    return lines + [""]


def _target(target: dict[str, Any]) -> list[str]:
    if "refused" in target:
        refused = target["refused"]
        return [f"  to {target['framework']}: refused ({refused['code']}): {refused['detail']}"]
    lines = [f"  to {target['framework']}: {target['convention']} ({target['native']}), each block in order:"]
    for tensor in target["tensors"]:
        lines.append(f"    {tensor['name']}  {tensor['shape']} {tensor['dtype']}:")
        for block in tensor["blocks"]:
            gate = f"  ({block['array']})"
            lines.append(f"      {tensor['variable']}{block['index']} = {block['numpy']}{gate}")
    return lines
