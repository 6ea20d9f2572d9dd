"""Enumeration areas: users and roles, validated edits with optimistic locking, history."""
