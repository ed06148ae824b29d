"""The notes domain's queries and mutations, one module per table."""
