"""A scan of every opcode of a pickle stream, before anything is unpickled.

``pickletools.genops`` walks the stream without building any object. The scan refuses:

* opcodes outside :data:`ALLOWED_OPCODES` (those ``torch.save`` and plain literals use):
  INST, OBJ, NEWOBJ, EXT*, out-of-band buffers and the like build arbitrary objects;
* a ``GLOBAL`` that the caller's ``check_global`` refuses (``STACK_GLOBAL`` takes its names
  from the stack, so the unpickler's ``find_class`` must check those too);
* memo indices that skip ahead (picklers number the memo from 0; a far index only serves
  to make the unpickler allocate);
* more than ``MAX_OPCODES`` opcodes: nearly every opcode makes the unpickler create or
  grow an object (an ``EMPTY_SET`` is one byte of pickle and 216 bytes of Python), so the
  count bounds what unpickling can allocate to about ``MAX_OPCODES`` x 220 bytes, plus
  the bytes of the strings it holds.

Declared lengths that run past the bytes present make ``genops`` raise ``ValueError``.
Nothing from the stream is run.
"""

from __future__ import annotations

import io
import pickletools
from collections.abc import Callable

from rnnbridge.errors import LimitExceeded, MalformedFile, UnsafeInput

#: the ``UnsafeInput`` code of a refused pickle
UNSAFE_PICKLE = "unsafe_pickle"

#: opcodes a torch.save pickle uses, plus harmless literals; anything else is refused
ALLOWED_OPCODES = frozenset(
    "PROTO FRAME STOP MARK POP POP_MARK DUP GLOBAL STACK_GLOBAL REDUCE BUILD BINPERSID "
    "PUT BINPUT LONG_BINPUT MEMOIZE GET BINGET LONG_BINGET NONE NEWTRUE NEWFALSE "
    "INT BININT BININT1 BININT2 LONG LONG1 LONG4 FLOAT BINFLOAT "
    "STRING BINSTRING SHORT_BINSTRING UNICODE BINUNICODE SHORT_BINUNICODE BINUNICODE8 "
    "BINBYTES SHORT_BINBYTES BINBYTES8 BYTEARRAY8 EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 TUPLE3 "
    "EMPTY_LIST LIST APPEND APPENDS EMPTY_DICT DICT SETITEM SETITEMS "
    "EMPTY_SET ADDITEMS FROZENSET".split()
)
_MEMO_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
#: the most opcodes in one pickle (a state_dict takes ~25 per tensor: 20,000 tensors)
MAX_OPCODES = 2**19


def scan_opcodes(data: bytes, where: str, check_global: Callable[[str, str], object]) -> int:
    """Check every opcode of the pickle at the start of ``data``; return where it ends.

    Parameters
    ----------
    data : bytes
        Starts with the pickle; bytes after its STOP are not looked at.
    where : str
        Names the stream in error messages.
    check_global : callable
        ``check_global(module, name)`` raises if a ``GLOBAL`` opcode may not name that.

    Returns
    -------
    int
        The offset just past the pickle's STOP opcode.

    Raises
    ------
    UnsafeInput
        An opcode that builds arbitrary objects (code ``unsafe_pickle``).
    MalformedFile
        A memo index that skips ahead.
    LimitExceeded
        More than ``MAX_OPCODES`` opcodes.
    ValueError
        The stream is truncated or otherwise unreadable (from ``pickletools``).
    """
    stream = io.BytesIO(data)
    puts = 0
    for count, (opcode, arg, pos) in enumerate(pickletools.genops(stream)):
        if count >= MAX_OPCODES:
            raise LimitExceeded(f"{where}: the pickle has more than {MAX_OPCODES} opcodes (at byte {pos})")
        if opcode.name not in ALLOWED_OPCODES:
            raise UnsafeInput(
                f"{where}: pickle opcode {opcode.name} at byte {pos} would build an "
                "arbitrary object; refused, nothing from the file was run",
                code=UNSAFE_PICKLE,
                refused=opcode.name,
            )
        if opcode.name == "GLOBAL":
            check_global(*str(arg).partition(" ")[::2])
        elif opcode.name in _MEMO_PUTS:
            if type(arg) is not int or arg > puts:
                raise MalformedFile(f"{where}: memo index {arg} at byte {pos} skips ahead")
            puts += 1
        elif opcode.name == "MEMOIZE":
            puts += 1
    return stream.tell()
