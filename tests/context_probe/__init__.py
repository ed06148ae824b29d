"""A query that needs the domain's own context class (``tests.test_domain_context``)."""
