"""The reproducibility report: every table and figure of the paper as offline HTML.

- :mod:`~fer_lib.report.plan`: the notebooks, the scope of each profile and the one report plan
  (datasets, figure dataset, named run groups) a build makes;
- :mod:`~fer_lib.report.results`: records of planned runs (never trained here), table cells, models;
- :mod:`~fer_lib.report.tables`: Tables 3-5 and the provenance of each page;
- :mod:`~fer_lib.report.published`: the result each notebook publishes, one dataclass per notebook;
- :mod:`~fer_lib.report.html`: the offline pages, the index and the notes;
- :mod:`~fer_lib.report.build`: train the plan, execute the notebooks, render (``python -m fer_lib.report``);
- :mod:`~fer_lib.report.page`: what the notebooks import.
"""

from fer_lib.report.plan import planned_configs

__all__ = ["planned_configs"]
