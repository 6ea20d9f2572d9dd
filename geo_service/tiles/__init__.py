"""Vector tiles (MVT) built in PostGIS, cached, and kept fresh by the database change log."""
