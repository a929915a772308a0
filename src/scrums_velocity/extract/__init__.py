"""The extractor: pages through the Tasks API and commits tasks and their history to the lake.

What other stages may use: :func:`extract` (lock, run, commit), its :class:`ExtractOptions` and
:class:`ExtractResult`, and the HTTP client's :class:`ClientSettings`.
"""

from scrums_velocity.extract.client import ClientSettings
from scrums_velocity.extract.run import ExtractOptions, ExtractResult, extract

__all__ = ["ClientSettings", "ExtractOptions", "ExtractResult", "extract"]
