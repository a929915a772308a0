"""scrums-velocity: delivery-velocity analytics for the Scrums.com Tasks API."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("scrums-velocity")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
