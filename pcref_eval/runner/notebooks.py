"""Executing the parameterised notebooks with papermill."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pcref_eval

if TYPE_CHECKING:
    from pcref_eval.runner.kept_kernel import KeptKernel

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


def execute_notebook(source: Path, output: Path, parameters: dict, cwd: Path, timeout: int = 1800,
                     kernel_log: Path | None = None, kept: "KeptKernel | None" = None) -> None:
    """Run ``source`` with papermill into ``output`` with ``parameters``; raise NotebookFailed on error.

    ``kernel_log``: file that receives the kernel process's own stdout/stderr (library warnings,
    its shutdown messages), which would otherwise go to the run's console. Keep it restricted.
    ``kept``: run in that kept kernel (:mod:`pcref_eval.runner.kept_kernel`) instead of a new one.
    """
    from papermill.exceptions import PapermillExecutionError

    output.parent.mkdir(parents=True, exist_ok=True)
    logging.getLogger("papermill").setLevel(logging.WARNING)
    # Kernels run side by side (process pool, Dask workers): each job gets its own connection folder with
    # its own sockets (:func:`_kernel_config`). The kernel's working folder is given to nbclient directly
    # rather than through papermill's ``cwd`` (a process-wide chdir, unsafe with several threads per worker).
    for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
        try:
            if kept is not None:
                kept.execute(source, output, parameters, cwd, timeout, kernel_log)
            else:
                _execute_in_new_kernel(source, output, parameters, cwd, timeout, kernel_log)
            return
        except PapermillExecutionError as exc:
            raise NotebookFailed(source, f"{exc.ename}: {exc.evalue}".strip()) from None
        except RuntimeError as exc:
            if KERNEL_START_FAILED not in str(exc) or attempt == KERNEL_START_ATTEMPTS:
                raise


def _execute_in_new_kernel(source: Path, output: Path, parameters: dict, cwd: Path, timeout: int,
                           kernel_log: Path | None) -> None:
    """papermill with a kernel of its own, started in ``cwd`` with a private connection folder."""
    import papermill as pm
    with tempfile.TemporaryDirectory(prefix="pcref-kernel-") as runtime:
        pm.execute_notebook(
            str(source), str(output), parameters=parameters, kernel_name=KERNEL_NAME,
            progress_bar=False, log_output=False, execution_timeout=timeout,
            config=_kernel_config(Path(runtime)), resources={"metadata": {"path": str(cwd)}},
            kernel_manager_class=_kernel_manager_class(kernel_log),
        )


#: Starting a kernel is tried this many times when it dies before replying (no cell has run then, so starting
#: again is safe). Added for the TCP port race of :func:`_kernel_config`'s docstring, which only new kernels'
#: starts were retried for; with Unix-domain sockets it is a guard against any other death at start-up.
KERNEL_START_ATTEMPTS = 3
KERNEL_START_FAILED = "Kernel died before replying to kernel_info"


def _kernel_config(runtime: Path):
    """traitlets config for the kernel manager: connection file and Unix-domain sockets in ``runtime``.

    IPC, not TCP on loopback: jupyter_client picks free TCP ports by binding and releasing them, and another
    process can take one before the kernel binds it. The kernel then dies at start-up and the notebook waits
    60 s for it: seen in CI twice, with two test processes each starting kernels in a pool (a new kernel was
    then started again, :data:`KERNEL_START_ATTEMPTS`; a kept kernel's start was not). Sockets in a private
    folder (``runtime``, mode 0700) cannot collide and are not reachable by other users.
    """
    from traitlets.config import Config
    c = Config()
    c.KernelManager.transport = "ipc"
    c.KernelManager.ip = str(runtime / "kernel-ipc")
    c.KernelManager.connection_file = str(runtime / "kernel.json")
    if _has_curve():  # encrypt the channels when the kernelspec supports it (silences a warning)
        c.KernelManager.transport_encryption = "auto"
    return c


def _has_curve() -> bool:
    try:
        import zmq
        from jupyter_client.manager import KernelManager
        return zmq.has("curve") and KernelManager.class_traits().get("transport_encryption") is not None
    except Exception:
        return False


_KM_CLASS = None


def _kernel_manager_class(kernel_log: Path | None = None):
    """An AsyncKernelManager whose kernels import the same ``pcref_eval`` as this process.

    From a source checkout (package not installed), the kernel started in the run folder could not
    import ``pcref_eval`` or could import a different copy: the checkout goes first on its PYTHONPATH.
    With ``kernel_log`` (a subclass per call, so threads never share it) the kernel's stdout and
    stderr are appended to that file.
    """
    global _KM_CLASS
    if _KM_CLASS is None:
        from jupyter_client.manager import AsyncKernelManager

        class PcrefKernelManager(AsyncKernelManager):
            kernel_log_path: str | None = None

            async def start_kernel(self, **kw):
                env = dict(kw.pop("env", None) or os.environ)
                root = str(Path(pcref_eval.__file__).resolve().parent.parent)
                if (Path(root) / "pyproject.toml").exists():
                    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]
                    env["PYTHONPATH"] = os.pathsep.join([root, *parts])
                if self.kernel_log_path is None:
                    return await super().start_kernel(env=env, **kw)
                Path(self.kernel_log_path).parent.mkdir(parents=True, exist_ok=True)
                with open(self.kernel_log_path, "ab") as log:  # the kernel keeps its own copy of the descriptor
                    return await super().start_kernel(env=env, stdout=log, stderr=log, **kw)

        _KM_CLASS = PcrefKernelManager
    if kernel_log is None:
        return _KM_CLASS
    return type("PcrefLoggedKernelManager", (_KM_CLASS,), {"kernel_log_path": str(kernel_log)})
