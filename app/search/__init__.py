"""Full-text search declared on a model: ``__search__ = ("body",)``.

- ``index``: the marker, and the index the schema sync keeps (SQLite FTS5, PostgreSQL
  ``tsvector``);
- ``terms``: user text turned into words, never passed raw to a query language;
- ``statement``: the ranked, keyset-paginated SELECT over a model's index.
"""
