"""Service settings, read from the environment (prefix ``RNNBRIDGE_``).

====================================  ===============  ===========================================
variable                              default          meaning
====================================  ===============  ===========================================
``RNNBRIDGE_HOST``                    ``127.0.0.1``    address ``rnnbridge serve`` binds
``RNNBRIDGE_PORT``                    ``8000``         port ``rnnbridge serve`` binds
``RNNBRIDGE_WORKERS``                 ``1``            uvicorn worker processes
``RNNBRIDGE_MAX_UPLOAD_BYTES``        2 GiB            largest request body; beyond it, 413
``RNNBRIDGE_MAX_TENSOR_ELEMENTS``     2**31            largest tensor a reader materialises; 413
``RNNBRIDGE_MAX_CONCURRENT``          ``2``            inspect/split/convert requests in flight per
                                                       worker; the next ones wait in line
``RNNBRIDGE_MAX_QUEUED``              ``16``           requests waiting in that line per worker;
                                                       beyond it, 503 with ``Retry-After``
``RNNBRIDGE_QUEUE_TIMEOUT``           ``30``           seconds a request may wait in line; then 503
``RNNBRIDGE_RETRY_AFTER``             ``5``            seconds the 503 asks clients to wait
``RNNBRIDGE_REQUEST_TIMEOUT``         ``300``          seconds a client has to send the whole
                                                       request body; beyond it, 408
``RNNBRIDGE_READ_TIMEOUT``            ``60``           seconds an HDF5 file may take to read (in a
                                                       reader process); then 400
``RNNBRIDGE_SHUTDOWN_TIMEOUT``        ``30``           seconds in-flight requests get to finish
                                                       after SIGTERM
``RNNBRIDGE_MAX_INIT_WEIGHTS``        2**26            weights of a layer described by sizes
                                                       (/init, /explain without a file); 413
``RNNBRIDGE_MAX_RUN_ELEMENTS``        2**24            elements of one /run input, output or trace
``RNNBRIDGE_MAX_RUN_WORK``            2**32            steps x batch x weights of one /run; 413
``RNNBRIDGE_TMP_DIR``                 system temp      where uploads are spooled, one dir per request
``RNNBRIDGE_METRICS_DIR``             (per ``serve``)  where each worker publishes its metrics; by
                                                       default a fresh directory in the temp dir
``RNNBRIDGE_LOG_LEVEL``               ``info``         log level
``RNNBRIDGE_LOG_FORMAT``              ``json``         ``json`` (one object a line) or ``text``
====================================  ===============  ===========================================

Sizes (``RNNBRIDGE_MAX_UPLOAD_BYTES``) are bytes or a number with a unit: ``2GB`` and ``10kB``
are decimal (10**9, 10**3), ``512MiB`` and ``2GiB`` binary (2**20, 2**30), case-insensitive.
``problems(error)`` turns a validation error into one line per invalid variable, which is what
``rnnbridge serve`` prints before exiting.

Resource bounds against hostile input (issue 13; README "Hostile input and resource bounds"):

====================================  ===============  ===========================================
``RNNBRIDGE_READ_MEMORY_BASE``        512 MiB          a reader process's resident memory budget:
``RNNBRIDGE_READ_MEMORY_FACTOR``      ``4``            base + factor x upload bytes; beyond, 413
``RNNBRIDGE_MAX_HEADER_BYTES``        64 KiB           request line and headers; beyond, 431
``RNNBRIDGE_MAX_HEADERS``             ``100``          header fields; beyond, 431
``RNNBRIDGE_HEADER_TIMEOUT``          ``10``           seconds to send the request line and headers
``RNNBRIDGE_IDLE_TIMEOUT``            ``5``            seconds a keep-alive connection may idle
``RNNBRIDGE_MIN_BODY_RATE``           16 KiB/s         slowest average body rate accepted, after
``RNNBRIDGE_BODY_RATE_GRACE``         ``10``           this many seconds; slower: 408
``RNNBRIDGE_MAX_UPLOADS``             ``0``            bodies arriving at once per worker; 0 means
                                                       max_concurrent + max_queued; beyond, 503
``RNNBRIDGE_SPOOL_MIN_FREE``          64 MiB           /readyz is 503 below this free space
``RNNBRIDGE_API_KEYS``                (none)           comma-separated keys; when set, every
                                                       request needs ``Authorization: Bearer
                                                       <key>`` or ``X-API-Key: <key>``
``RNNBRIDGE_AUTH_EXEMPT``             probes, metrics  paths served without a key
====================================  ===============  ===========================================

Only the transports (``rnnbridge.service``, ``rnnbridge.cli``) import this module; the engine and
the readers receive plain values (``rnnbridge.formats.base.Limits``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ByteSize, Field, TypeAdapter, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from rnnbridge.formats.base import DEFAULT_MAX_TENSOR_ELEMENTS, Limits

LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]
LogFormat = Literal["json", "text"]

_BYTE_SIZE = TypeAdapter(ByteSize)


def _size(value: Any) -> int:
    """Bytes, from an int or a string with an optional unit (``2GB``, ``512MiB``, ``1.5 GiB``)."""
    if isinstance(value, int):
        return value
    try:
        return int(_BYTE_SIZE.validate_python(value))
    except ValidationError:
        raise ValueError("not a size: give bytes or a number with a unit, e.g. 2GB, 512MiB") from None


#: a byte count that accepts units
Size = Annotated[int, BeforeValidator(_size)]


class Settings(BaseSettings):
    """The service's configuration; every field can be set as ``RNNBRIDGE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="RNNBRIDGE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
    max_upload_bytes: Size = Field(default=2 * 1024**3, gt=0)
    max_tensor_elements: int = Field(default=DEFAULT_MAX_TENSOR_ELEMENTS, gt=0)
    max_concurrent: int = Field(default=2, ge=1)
    max_queued: int = Field(default=16, ge=0)
    queue_timeout: float = Field(default=30.0, ge=0)
    retry_after: int = Field(default=5, ge=0)
    request_timeout: float = Field(default=300.0, gt=0)
    read_timeout: float = Field(default=60.0, gt=0)
    shutdown_timeout: float = Field(default=30.0, ge=0)
    max_init_weights: int = Field(default=2**26, gt=0)
    max_run_elements: int = Field(default=2**24, gt=0)
    max_run_work: int = Field(default=2**32, gt=0)
    tmp_dir: Path | None = None
    metrics_dir: Path | None = None
    log_level: LogLevel = "info"
    log_format: LogFormat = "json"

    # --- resource bounds against hostile input (issue 13) ---
    read_memory_base: int = Field(default=512 * 1024**2, gt=0)
    read_memory_factor: float = Field(default=4.0, ge=0)
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    max_headers: int = Field(default=100, ge=8)
    header_timeout: float = Field(default=10.0, gt=0)
    idle_timeout: float = Field(default=5.0, gt=0)
    min_body_rate: int = Field(default=16 * 1024, ge=0)
    body_rate_grace: float = Field(default=10.0, ge=0)
    max_uploads: int = Field(default=0, ge=0)  # 0: max_concurrent + max_queued
    spool_min_free: int = Field(default=64 * 1024**2, ge=0)
    api_keys: str = Field(default="", repr=False)
    auth_exempt: str = "/healthz,/readyz,/metrics,/,/static/"
    # --- end of resource bounds ---

    def limits(self) -> Limits:
        """The bounds handed to the file readers."""
        return Limits(
            max_tensor_elements=self.max_tensor_elements,
            max_total_bytes=self.max_upload_bytes,
            tmp_dir=self.tmp_dir,
            read_timeout=self.read_timeout,
            isolate=True,
            read_memory_base=self.read_memory_base,
            read_memory_factor=self.read_memory_factor,
        )

    def upload_slots(self) -> int:
        """How many request bodies may arrive at once per worker."""
        return self.max_uploads or self.max_concurrent + self.max_queued

    def keys(self) -> tuple[bytes, ...]:
        """The accepted API keys (none: no authentication)."""
        return tuple(key.strip().encode() for key in self.api_keys.split(",") if key.strip())

    def exempt_paths(self) -> frozenset[str]:
        """The paths served without an API key."""
        return frozenset(path.strip() for path in self.auth_exempt.split(",") if path.strip())


def problems(error: ValidationError, prefix: str = "RNNBRIDGE_") -> list[str]:
    """One line per invalid setting: the variable, the value it had and what is wrong."""
    lines = []
    for item in error.errors():
        name = prefix + "_".join(str(part) for part in item.get("loc", ())).upper()
        value = item.get("input")
        shown = repr(value if not isinstance(value, str) or len(value) <= 80 else value[:80] + "...")
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        lines.append(f"{name}={shown}: {message[:1].lower()}{message[1:]}")
    return lines
