"""The HTTP edge: the app factory, routes, middleware, errors as responses, metrics."""
