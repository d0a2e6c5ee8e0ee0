"""Data contracts: versioned great-expectations suites per extract table, validated fast and strictly.

- ``data_contracts/*.yml``: one suite per table (format: ``data_contracts/README.md``).
- :func:`load_suites`: strict loading (an unknown expectation type is refused, not dropped).
- :func:`validate_site`: validate a site folder; returns a :class:`SiteValidation` and writes the
  machine-readable result, failing-row samples and the offline DQ report to a restricted folder.
- :mod:`pcref_eval.contracts.command`: the ``pcref-eval validate DIR`` command.

Importing this package does not import great_expectations (about 6-17 s); only loading suites does.
"""

from pcref_eval.contracts.suite import DEFAULT_CONTRACTS_DIR, ContractError, ExpectationSpec, Suite, load_suites
from pcref_eval.contracts.validate import SiteValidation, validate_site

__all__ = ["DEFAULT_CONTRACTS_DIR", "ContractError", "ExpectationSpec", "SiteValidation", "Suite", "load_suites",
           "validate_site"]
