"""samplecnn's version: the one source of truth (pyproject.toml reads it as its dynamic version).

A plain string, not ``importlib.metadata.version()``: that import chain (email, zipfile,
csv, ...) cost a cold ``samplecnn infer`` about a tenth of a second at every start.
"""

__version__ = "0.1.0"
