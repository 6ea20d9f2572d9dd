"""HTTP routes, one module per resource: each parses a request, calls the domain, shapes
the answer."""
