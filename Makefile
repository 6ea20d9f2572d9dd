.PHONY: setup demo serve test lint format bench bench-short bench-dry-run setup-bench bench-detail \
	bench-ea soak

setup:
	scripts/setup.sh

demo:
	scripts/demo.sh

serve: setup
	.venv/bin/geo-service serve

test:
	scripts/test.sh

SOURCES = geo_core boundaries indicators tilecache geo_service tests scripts bench

lint: setup
	.venv/bin/ruff check $(SOURCES)
	.venv/bin/ruff format --check $(SOURCES)
	.venv/bin/lint-imports
	.venv/bin/mypy

format: setup
	.venv/bin/ruff format $(SOURCES)
	.venv/bin/ruff check --fix $(SOURCES)

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

# EA generation for all Vietnam and single EA saves (issue #7); a 10-minute soak (issue #9).
bench-ea: setup
	.venv/bin/python -m bench.ea_edits

soak: setup
	.venv/bin/python bench/soak.py --minutes 10
