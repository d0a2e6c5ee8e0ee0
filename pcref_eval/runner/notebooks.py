"""Executing the parameterised notebooks with papermill."""

from __future__ import annotations

import logging
from pathlib import Path

import pcref_eval

#: The committed notebooks (thin: a parameters cell and calls into pcref_eval).
NOTEBOOK_DIR = Path(pcref_eval.__file__).resolve().parent.parent / "notebooks"
SITE_NOTEBOOK = NOTEBOOK_DIR / "site.ipynb"
CROSS_SITE_NOTEBOOK = NOTEBOOK_DIR / "cross_site.ipynb"
KERNEL_NAME = "python3"


class NotebookFailed(RuntimeError):
    """A notebook raised; ``summary`` is the exception type and message, without traceback."""

    def __init__(self, notebook: Path, summary: str):
        super().__init__(f"{notebook.name}: {summary}")
        self.summary = summary


def execute_notebook(source: Path, output: Path, parameters: dict, cwd: Path, timeout: int = 1800) -> None:
    """Run ``source`` with papermill into ``output`` with ``parameters``; raise NotebookFailed on error."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    output.parent.mkdir(parents=True, exist_ok=True)
    logging.getLogger("papermill").setLevel(logging.WARNING)
    try:
        pm.execute_notebook(
            str(source), str(output), parameters=parameters, kernel_name=KERNEL_NAME, cwd=str(cwd),
            progress_bar=False, log_output=False, execution_timeout=timeout,
        )
    except PapermillExecutionError as exc:
        raise NotebookFailed(source, f"{exc.ename}: {exc.evalue}".strip()) from None
