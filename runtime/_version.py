"""The installed distribution's version (one source of truth: pyproject.toml)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("samplecnn")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0+unknown"
