.PHONY: setup demo serve test lint format bench bench-short bench-dry-run setup-bench bench-detail

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

bench:
	scripts/bench.sh

bench-short:
	scripts/bench.sh --short

bench-dry-run:
	scripts/bench.sh --dry-run

setup-bench:
	scripts/setup-bench.sh

# The single benchmarks, each with its own detailed report (bench/README.md).
bench-detail: setup-bench
	.venv/bin/python bench/load_boundaries.py
	.venv/bin/python bench/features.py
	.venv/bin/python bench/tiles.py
	.venv/bin/python bench/viewer.py
