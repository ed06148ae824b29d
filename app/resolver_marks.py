"""Marks a resolver function carries to tell the lean executor (``app.schema.executor``)
what it may skip: each is the name of an attribute set to a true value (or, for
``PREFETCH``, to a function) on the resolver.

Kept apart from the executor so that types below the schema (pagination) can carry them.
"""

from __future__ import annotations

# A resolver ``(root)`` that reads only its parent object (an edge's cursor).
SOURCE_ONLY = "livegraph_source_only"
# A resolver ``(root, info)`` that reads nothing of ``info`` but ``info.context`` and
# may return an awaitable (the generated relationship fields).
CONTEXT_ONLY = "livegraph_context_only"
# What a relationship field's resolver offers to load for many parents at once: a
# function of the execution's context and the parents, returning an awaitable of the
# load, or None when nothing is left to load.
PREFETCH = "livegraph_prefetch"
# An operation's resolver ``(info, **arguments)``: what it answers depends on nothing
# but its info and its arguments, which it neither keeps nor changes. A live cohort's
# runs call it with arguments converted once (``LeanExecutor``'s root calls).
ARGUMENTS_ONLY = "livegraph_arguments_only"
