.PHONY: setup demo serve test lint format bench bench-short

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
	.venv/bin/python bench/features.py
	.venv/bin/python bench/tiles.py
	.venv/bin/python bench/viewer.py

bench-short: setup
	.venv/bin/python bench/load_boundaries.py --repeat 1
	.venv/bin/python bench/features.py --short
	.venv/bin/python bench/tiles.py --short
	.venv/bin/python bench/viewer.py --repeat 1
