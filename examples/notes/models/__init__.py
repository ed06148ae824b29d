"""The notes domain's tables, one module each."""
