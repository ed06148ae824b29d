"""Queries and mutations, one module per domain; discovered, never registered by hand."""
