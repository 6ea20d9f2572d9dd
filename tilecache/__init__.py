"""The vector tile cache: backends (SQLite on disk, Redis shared) and change-driven freshness."""
