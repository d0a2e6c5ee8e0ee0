"""Publishable, disclosure-controlled reports of a run: offline HTML, A4 PDF and Word.

``build_report(run_dir, formats=["html", "pdf", "docx"], site_steps=...)`` assembles
``release/report.*`` from the run's executed notebooks (code stripped, only released outputs kept),
a title page from the manifest, and methods and limitations generated from the config.
See :mod:`pcref_eval.report.build`.
"""

from pcref_eval.report.build import REPORT_FORMATS, ReportError, build_report

__all__ = ["REPORT_FORMATS", "ReportError", "build_report"]
