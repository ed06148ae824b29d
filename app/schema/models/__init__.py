"""The tables: one module per table, discovered by ``app.schema.registry``."""
