"""Enumeration areas: automatic delineation, the rules, edits with optimistic locking and
history, the coverage report."""
