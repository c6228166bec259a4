"""The one exception family of the ``slides`` layer."""

from __future__ import annotations


class SlideError(Exception):
    """A slide file cannot be opened, read or served.

    The message is written for a person (a pathologist or lab admin reading an upload's status): it says
    what is wrong and, where there is one, what to do about it. It never contains the server-side path;
    ``path`` carries that for logs.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path

    @property
    def reason(self) -> str:
        """The human-readable message (same as ``str(error)``)."""
        return str(self)


class TileNotFound(SlideError):
    """A DeepZoom level or tile address outside the pyramid (an HTTP 404, not a broken slide)."""
