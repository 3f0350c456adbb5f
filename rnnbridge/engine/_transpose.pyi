# The optional compiled transpose (_transpose.c): typing for the checker.
from typing import Any

def transpose_into(target: Any, source: Any, /) -> None: ...
