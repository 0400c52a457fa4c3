"""The ``recfuse`` command."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="recfuse",
    help="Long/short-term interest fusion recommender: data, benchmarks, training, serving.",
    no_args_is_help=True,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"recfuse {version('recfuse')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Long/short-term interest fusion recommender: data, benchmarks, training, serving."""


def _register() -> None:
    from recfuse.data.cli import app as data_app

    app.add_typer(data_app, name="data", help="Get, register and describe datasets.")
    from recfuse.text.cli import app as text_app

    app.add_typer(text_app, name="text", help="Encode item text (sentence-transformer, cached) and search it.")
    from recfuse.evaluate.cli import register as register_benchmark

    register_benchmark(app)
    from recfuse.evaluate.cli import register_ablate, register_compare, register_report

    register_ablate(app)
    register_compare(app)
    register_report(app)
    from recfuse.train.cli import register as register_train

    register_train(app)
    from recfuse.recommend import register as register_recommend

    register_recommend(app)
    from recfuse.serve.cli import register as register_serve

    register_serve(app)


def main() -> None:
    _register()
    app()


if __name__ == "__main__":
    main()
