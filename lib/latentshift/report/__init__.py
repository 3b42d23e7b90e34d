"""The pages people read: Findings in words, the HTML report, the study pages.

- :mod:`~latentshift.report.findings`, :mod:`~latentshift.report.readings_findings` — each
  step's Findings, made from its numbers;
- :mod:`~latentshift.report.pages` — nbconvert pages and the shared page shell;
- :mod:`~latentshift.report.index_page` — the index: the run's answer and headline numbers;
- :mod:`~latentshift.report.study_report` — a study's page;
- :mod:`~latentshift.report.realcells_summary` — the real cells' tables and sentences;
- :mod:`~latentshift.report.donor_level_summary` — recorded donor-level readings as tables.
"""

__all__ = [
    "donor_level_summary",
    "findings",
    "index_page",
    "pages",
    "readings_findings",
    "realcells_summary",
    "study_report",
]
