"""Background jobs for long outputs (a commune's map book): stored in PostgreSQL, run by any
instance, followed by their clients (see `service`, `runner` and `sql`)."""
