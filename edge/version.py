"""The installed version, from the package metadata (setup.cfg is the one place it is written)."""

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("building-edge")
except PackageNotFoundError:  # running from a source tree that was never installed
    VERSION = "0.0.0+source"
