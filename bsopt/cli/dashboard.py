"""``bsopt dashboard``: optuna-dashboard on a study storage, with bsopt's artifacts and figures."""

from __future__ import annotations

from pathlib import Path

import typer

from bsopt.cli.common import Console

console = Console()


def dashboard(
    storage: str = typer.Option(None, "--storage", help="Optuna storage URL (default: bsopt.db in the study root, sqlite:///studies/bsopt.db) "
                                "or a journal file path."),
    port: int = typer.Option(8080, "--port", help="Port on 127.0.0.1."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (keep 127.0.0.1 unless you "
                             "mean to share it)."),
    artifact_dir: Path = typer.Option(None, "--artifact-dir", help="Artifact store (default: the one the "
                                      "studies recorded, else artifacts/ in the study root)."),
    publish: str = typer.Option(None, "--publish", help="First (re)publish this study's artifacts and figures."),
):
    """Browse studies in optuna-dashboard: trials with metrics and units, feasibility, constraint
    violations, build artifacts, and the Pareto and hypervolume figures."""
    from bsopt.study import dashboard as dash

    if publish:
        from bsopt.study.engine import load_study

        out = dash.publish(load_study(publish, storage), directory=artifact_dir)
        console.print(f"{publish}: {out['files']} artifact file(s) for {out['trials']} trial(s), "
                      f"{out['figures']} figure(s)")
    dash.serve(storage, host=host, port=port, artifact_path=artifact_dir,
               ready=lambda: console.print(f"optuna-dashboard on http://{host}:{port}/dashboard (Ctrl-C stops it)"))
