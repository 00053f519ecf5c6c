"""mmtrack-kd: multi-modal single-object tracking with a mutual-prompt two-stream teacher
distilled into a fast one-stream student."""

from importlib import metadata

from mmtrack_kd.hookspecs import hookimpl

try:
    __version__ = metadata.version("mmtrack-kd")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "hookimpl"]
