"""The chat's tables: one module per table, discovered by ``app.schema.registry``. What
the chat plugs into the engine is declared in ``app.resolvers.chat``."""
