"""`samplecnn` command line: thin typer wrappers over the public Python API.

Heavy imports (torch, onnxruntime) happen inside each command, so `samplecnn infer` never
loads torch and `samplecnn --help` starts fast.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="samplecnn",
    help="Music auto-tagging with multi-level, multi-scale sample-level CNNs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Music auto-tagging with multi-level, multi-scale sample-level CNNs."""


@app.command()
def summary(
    scales: list[str] = typer.Argument(None, help="Scales such as 3^9 (default: the presets 2^14 3^9 5^6)."),
    width: float = typer.Option(1.0, help="Channel width multiplier."),
    n_tags: int = typer.Option(50, help="Number of output tags."),
) -> None:
    """Print parameters, segment length, FLOPs and tap widths of backbone scales."""
    from .trainer.model import format_summary, summary as rows

    typer.echo(format_summary(rows(scales or None, n_tags=n_tags, width=width)))


# --- train (trainer/) ------------------------------------------------------------------------

# --- export (export/) ------------------------------------------------------------------------

# --- infer (runtime/) ------------------------------------------------------------------------

# --- fit (trainer/fit) -----------------------------------------------------------------------

# --- bench (benchmarks/) ---------------------------------------------------------------------


def main() -> None:
    app()


if __name__ == "__main__":
    main()
