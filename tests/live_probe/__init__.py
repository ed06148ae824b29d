"""Extra operations for tests: resolvers that read parts of the viewer's identity, and
one that answers in part."""
