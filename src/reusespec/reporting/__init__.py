"""Reports of a run: the JSON document, the terminal table, Markdown, HTML and pictures.

* :mod:`~reusespec.reporting.document`: spec outcomes, the versioned JSON report, the table;
* :mod:`~reusespec.reporting.render`: Markdown and HTML from a JSON report;
* :mod:`~reusespec.reporting.pictures`: the backbone x task matrix and shift curves as PNG;
* :mod:`~reusespec.reporting.numbers`: the one number formatter they all use.
"""
