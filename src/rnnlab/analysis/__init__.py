"""Finished jobs read back from disk, torch-free: tables, statistics, summaries and the report.

``jobs``: a sweep's job directories as records; ``networks``: one row per trained network
(``networks.csv``); ``groups``: networks pooled into configurations and paired effects
(``groups.csv``); ``stats``: the interval methods and tests; ``coverage``: their coverage by
simulation; ``summary`` and ``summary_plot``: a sweep's ``summary.csv``/``.md``/``.png``;
``report``: a report over several studies; ``text``: how all of them write a number and order a
factor's values. A new statistic goes in ``stats``; a new table or figure of a sweep in
``summary``.
"""
