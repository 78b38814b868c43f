"""One exception class per vit_status_code (include/vit/vit.h), each carrying the library's message.

Every class derives from VitError and, where one fits, from the matching built-in exception, so that
``except ValueError`` catches a bad argument and ``except OSError`` a file that cannot be read.
"""
from __future__ import annotations


class VitError(RuntimeError):
    """A vit_status other than VIT_OK: ``code`` is the vit_status_code, str(e) the library's message."""

    code: int = -1
    code_name: str = "error"

    @property
    def message(self) -> str:
        return str(self)


class InvalidArgumentError(VitError, ValueError):
    """VIT_ERR_INVALID_ARGUMENT: a bad argument (batch out of range, 0-sized image, unknown value)."""

    code, code_name = 1, "invalid argument"


class IOError(VitError, OSError):  # noqa: A001 - the C API's name; vit_infer.IOError, not the builtin
    """VIT_ERR_IO: a file cannot be opened or read."""

    code, code_name = 2, "I/O error"


class FormatError(VitError, ValueError):
    """VIT_ERR_FORMAT: corrupt, truncated or unrecognised data (checkpoint, config, image)."""

    code, code_name = 3, "format error"


class UnsupportedError(VitError):
    """VIT_ERR_UNSUPPORTED: a valid request this build or model cannot serve (a variant, a device, a precision)."""

    code, code_name = 4, "unsupported"


class OutOfMemoryError(VitError, MemoryError):
    """VIT_ERR_OUT_OF_MEMORY: host or device memory ran out; the session stays usable."""

    code, code_name = 5, "out of memory"


class DeviceError(VitError):
    """VIT_ERR_DEVICE: no CUDA device, or a CUDA / cuBLAS call failed."""

    code, code_name = 6, "device error"


class CancelledError(VitError):
    """VIT_ERR_CANCELLED: the run was stopped by Session.cancel()."""

    code, code_name = 7, "cancelled"


class InternalError(VitError):
    """VIT_ERR_INTERNAL: a bug in the library; the message says where."""

    code, code_name = 8, "internal error"


ERRORS: dict[int, type[VitError]] = {
    c.code: c
    for c in (InvalidArgumentError, IOError, FormatError, UnsupportedError, OutOfMemoryError, DeviceError,
              CancelledError, InternalError)
}
