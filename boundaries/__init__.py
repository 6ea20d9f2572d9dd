"""Loading, checking and generalising administrative boundaries."""
