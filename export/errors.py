"""The export package's base error, in a module of its own so torch-free helpers
(:mod:`samplecnn.export.tensorrt`'s compatibility check) can raise it without importing torch."""


class ExportError(RuntimeError):
    """Export could not produce a valid graph or bundle. The message names the fix."""
