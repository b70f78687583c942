"""The data contract, free of Dagster, in five rooms (each imports only those listed before it):

- ``kinds``: what a column holds (numeric, boolean, categorical, datetime or invalid), its values
  as category text and as datetimes.
- ``results``: ``RuleResult``, what every rule returns, with the ``Severity`` of a failure.
- ``schema``: the feature columns a day must have (``Schema``) and the rules on columns: a day's
  against the schema, the days of a window against each other.
- ``rules``: the ``Contract`` pipelines.yaml declares (``quality:``), each rule on a day's values,
  ``evaluate`` (every rule, in order), and the rows repeated across a window.
- ``suggestion``: a contract suggested from the ingested days (``ml-platform contract``).

Import from the module that holds a name; this package re-exports nothing.
"""
