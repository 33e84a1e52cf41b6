"""tfx's errors as Python exceptions: every failure of the engine is a TfxError carrying the
engine's status code and message; the common ones are also the built-in exception a Python
caller expects (a missing model is a FileNotFoundError, a bad argument a ValueError)."""


class TfxError(Exception):
    """An error from the tfx engine. `code` is its tfx_status (tfx/abi.h)."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


class InvalidArgumentError(TfxError, ValueError):
    """A bad argument: an id outside the vocabulary, a generation setting out of range, ..."""


class NotFoundError(TfxError, FileNotFoundError):
    """A missing model folder, file, tokenizer or chat template."""


class UnsupportedError(TfxError, NotImplementedError):
    """Something tfx does not run (an architecture without a plugin, beam sampling, ...)."""


class FormatError(TfxError, ValueError):
    """A file that is not what it should be (a bad config.json, truncated weights, ...)."""


_BY_CODE = {1: InvalidArgumentError, 2: NotFoundError, 3: UnsupportedError, 6: FormatError}


def raise_status(code: int, message: str):
    """Raises the exception for an engine status (called by the extension)."""
    raise _BY_CODE.get(code, TfxError)(code, message)
