"""One notebook kernel kept alive for the notebooks a pool worker runs one after another.

A process-pool worker runs its notebooks in turn (a national run: 25 site notebooks a worker). Starting a
kernel for each costs its start-up and the workbench's imports, and on a virtual machine whose first
touch of fresh memory is slow, most of a new kernel's system time. Measured on four national site
notebooks run in turn (2,000,000-person bench data; one process): 12.9 s a notebook with a new kernel
each, 9.8 s in one kept kernel (page faults 390,000 -> 124,000).

Between notebooks the kernel is reset to what a new kernel shows a notebook: every name the notebook
defined is deleted (IPython's ``reset(new_session=True)``), its figures are closed, Python's warning
registries are cleared (a warning shown once is shown again) and the execution count starts at 1 again.
Imported modules stay loaded: the workbench keeps no state in them that a notebook's results depend on
(tested: a site's released files are byte-identical from a kept kernel, in either order, and from a new
kernel).

After a notebook that fails (an error in a cell, a timeout, a dead kernel) the kernel is shut down and
the next notebook gets a new one, so a failure never carries over to another site.

The kernel's own stdout and stderr (not the notebook's outputs) go to a file beside its connection
file; the part written while a notebook ran is appended to that notebook's kernel log, as with a kernel
per notebook.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

KEPT_KERNEL_ENGINE = "pcref-kept-kernel"

#: Run silently after each notebook. ``InteractiveShell.reset(new_session=True)`` deletes the notebook's names
#: (and these imports), clears the output cache, starts a new history session and counts from 1 again.
RESET_CODE = """\
import warnings as _warnings, matplotlib.pyplot as _plt
_plt.close("all")
_warnings.onceregistry.clear()
with _warnings.catch_warnings():  # leaving it marks the filters changed: every __warningregistry__ is stale
    pass
get_ipython().reset(new_session=True)
import gc as _gc
_gc.collect()
del _gc
"""


class KeptKernel:
    """A kernel started on first use in ``cwd`` and kept for the next notebook (see the module docstring)."""

    def __init__(self):
        self.km = None
        self.cwd: Path | None = None
        self._runtime: tempfile.TemporaryDirectory | None = None

    @property
    def log_file(self) -> Path | None:
        """The kernel's own stdout and stderr (None when no kernel is running)."""
        return None if self._runtime is None else Path(self._runtime.name) / "kernel.log"

    def execute(self, source: Path, output: Path, parameters: dict, cwd: Path, timeout: int,
                kernel_log: Path | None) -> None:
        """Run one notebook with papermill in the kept kernel (started here if there is none, or if ``cwd``
        changed). Raises what papermill raises; the kernel is then shut down."""
        import papermill as pm

        if self.km is not None and self.cwd != Path(cwd):
            self.shutdown()
        if self.km is None:
            self._start(Path(cwd))
        start = self.log_file.stat().st_size
        try:
            pm.execute_notebook(str(source), str(output), parameters=parameters, kernel_name=self.km.kernel_name,
                                progress_bar=False, log_output=False, execution_timeout=timeout,
                                engine_name=KEPT_KERNEL_ENGINE, km=self.km)
        except BaseException:
            self._copy_log(start, kernel_log)
            self.shutdown()
            raise
        self._copy_log(start, kernel_log)

    def shutdown(self) -> None:
        """Stop the kernel (if any) and remove its connection folder."""
        from jupyter_core.utils import run_sync

        km, self.km = self.km, None
        try:
            if km is not None and run_sync(km.is_alive)():
                run_sync(km.shutdown_kernel)(now=False)
        except Exception:  # a kernel that will not stop gracefully: kill it
            run_sync(km.shutdown_kernel)(now=True)
        finally:
            if km is not None:
                run_sync(km.cleanup_resources)()
            if self._runtime is not None:
                self._runtime.cleanup()
                self._runtime = None

    def _start(self, cwd: Path) -> None:
        from jupyter_core.utils import run_sync

        from pcref_eval.runner.notebooks import KERNEL_NAME, _kernel_config, _kernel_manager_class

        _register_engine()
        self._runtime = tempfile.TemporaryDirectory(prefix="pcref-kernel-")
        runtime = Path(self._runtime.name)
        self.log_file.touch()
        km = _kernel_manager_class(self.log_file)(kernel_name=KERNEL_NAME, config=_kernel_config(runtime))
        try:
            run_sync(km.start_kernel)(cwd=str(cwd))
        except BaseException:
            self._runtime.cleanup()
            self._runtime = None
            raise
        self.km, self.cwd = km, cwd

    def _copy_log(self, start: int, kernel_log: Path | None) -> None:
        """Append what the kernel wrote to its own stdout/stderr since byte ``start`` to ``kernel_log``."""
        if kernel_log is None or self.log_file is None or not self.log_file.exists():
            return
        with open(self.log_file, "rb") as f:
            f.seek(start)
            written = f.read()
        kernel_log.parent.mkdir(parents=True, exist_ok=True)
        with open(kernel_log, "ab") as log:
            log.write(written)


_REGISTERED = False


def _register_engine() -> None:
    """Register papermill's engine that runs a notebook in a given kernel manager's kernel and leaves it running."""
    global _REGISTERED
    if _REGISTERED:
        return
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.utils import merge_kwargs, remove_args

    class KeptKernelEngine(NBClientEngine):
        """papermill's nbclient engine with ``km`` (a started kernel manager): the kernel is not shut down;
        after a notebook that ran to its end, its namespace is reset (:data:`RESET_CODE`)."""

        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None, **kwargs):
            km = kwargs.pop("km")
            kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
            client = PapermillNotebookClient(nb_man, km=km, **merge_kwargs(
                kwargs, timeout=execution_timeout, startup_timeout=start_timeout, kernel_name=kernel_name,
                log=logging.getLogger("papermill"), log_output=log_output, stdout_file=stdout_file,
                stderr_file=stderr_file))
            try:
                result = client.execute()
                reset_namespace(client.kc)
                return result
            finally:
                if client.kc is not None:
                    client.kc.stop_channels()

    papermill_engines.register(KEPT_KERNEL_ENGINE, KeptKernelEngine)
    _REGISTERED = True


def reset_namespace(kc, timeout: int = 120) -> None:
    """Run :data:`RESET_CODE` silently through the kernel client ``kc``; raise if it did not succeed."""
    from jupyter_core.utils import run_sync

    reply = run_sync(kc.execute_interactive)(RESET_CODE, silent=True, store_history=False, timeout=timeout)
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"resetting the kernel between notebooks failed: {reply['content'].get('ename')}")


_WORKER_KERNEL: KeptKernel | None = None


def keep_worker_kernel() -> None:
    """Pool worker initializer part: this process runs its notebooks in one kept kernel, stopped at its exit."""
    global _WORKER_KERNEL
    from multiprocessing import util

    _WORKER_KERNEL = KeptKernel()
    util.Finalize(None, _WORKER_KERNEL.shutdown, exitpriority=10)


def worker_kernel() -> KeptKernel | None:
    """This worker's kept kernel, or None outside a pool worker (a new kernel per notebook)."""
    return _WORKER_KERNEL
