.PHONY: setup demo serve test lint format bench

setup:
	scripts/setup.sh

demo:
	scripts/demo.sh

serve: setup
	.venv/bin/geo-service serve

test:
	scripts/test.sh

lint: setup
	.venv/bin/ruff check geo_service boundaries tilecache tests scripts bench
	.venv/bin/mypy

format: setup
	.venv/bin/ruff format geo_service boundaries tilecache tests scripts bench

bench: setup
	.venv/bin/python bench/load_boundaries.py
