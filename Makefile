# The two commands of the README, and what they stand on.
#   make run    the main job on embedded defaults (services, topics, ingest API, workload)
#   make test   everything CI checks: formatting, lints, and the tests against real services
SHELL := /bin/bash
.DEFAULT_GOAL := run
.PHONY: run test services services-cluster services-down services-status lint notebooks movielens bench-ingest bench-jobs bench-feed bench-warehouse bench-ranking bench-explore bench-dashboard

# Services: install what is missing (apt packages, the tansu broker), start what is not running.
services:
	scripts/services up

# The tests also run the slot-local jobs on a local Redis Cluster (3 masters, 3 replicas).
services-cluster:
	scripts/services up --cluster

services-down:
	scripts/services down --cluster

services-status:
	scripts/services status

run: services
	cargo run -p aperture -- demo

lint: services
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

test: services-cluster lint
	cargo test --workspace
	scripts/notebooks test
	scripts/movielens

# The ranking trainer on MovieLens 100K (from the recbole wheel): its offline table.
movielens: services
	scripts/movielens

# The notebooks, each run in a Jupyter kernel against a warehouse built from the generator
# (pinned Python packages from notebooks/requirements.txt, installed into .aperture/py).
notebooks: services
	scripts/notebooks test

bench-ingest: services
	cargo bench -p aperture-ingest --bench ingest

bench-jobs: services
	cargo bench -p aperture --bench jobs

bench-feed: services
	cargo bench -p aperture --bench feed

bench-explore: services
	cargo bench -p aperture --bench explore

bench-dashboard: services
	cargo bench -p aperture --bench dashboard

# No services: the model scores candidates already in memory.
bench-ranking:
	cargo bench -p aperture-ranking --bench scoring

# DataFusion next to DuckDB on the same Parquet; DuckDB (Python package) goes into a venv.
bench-warehouse:
	test -x .aperture/bench-venv/bin/python || python3 -m venv .aperture/bench-venv
	# The DuckDB the notebooks pin, so the ceiling moves only when that pin does.
	.aperture/bench-venv/bin/pip install -q "$$(grep '^duckdb==' notebooks/requirements.txt)"
	cargo bench -p aperture-warehouse --bench warehouse
