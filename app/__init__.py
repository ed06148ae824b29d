"""A GraphQL backend where every query marked ``@live`` stays current by itself."""
