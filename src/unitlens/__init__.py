"""unitlens: see what every hidden unit of a deep network computes.

Deep Belief Networks and Stacked Denoising Auto-Encoders, trained on MNIST and natural-image patches,
and the three visualization methods of Erhan, Bengio, Courville & Vincent (2009).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from unitlens.errors import UnitlensError

try:
    __version__ = version("unitlens")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

__all__ = ["UnitlensError", "__version__"]
