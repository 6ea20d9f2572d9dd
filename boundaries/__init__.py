"""Boundaries: reading, checking, cleaning, generalising and writing administrative units;
vintages and crosswalks between them."""
