"""The pages people read: Findings in words, the HTML report, the study pages.

- :mod:`~latentshift.report.findings`, :mod:`~latentshift.report.readings_findings` — each
  step's Findings, made from its numbers;
- :mod:`~latentshift.report.pages` — nbconvert pages and the index;
- :mod:`~latentshift.report.study_report` — a study's page;
- :mod:`~latentshift.report.realcells_summary` — the real cells' tables and sentences.
"""

__all__ = [
    "findings",
    "pages",
    "readings_findings",
    "realcells_summary",
    "study_report",
]
