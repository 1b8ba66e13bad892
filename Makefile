# The two set-up commands of the README:
#   make demo   install, then run the chapter end to end on the bundled reviews
#   make test   install (with test extras), then run the whole test suite
# and, for development:
#   make test-fast  the same without the tests marked slow (worker/model/server processes, the
#                   packaged models, the README run), spread over the cores (pytest-xdist)
VENV ?= .venv

.PHONY: setup setup-test demo test test-fast bench

setup:
	bash scripts/setup.sh

setup-test:
	bash scripts/setup.sh test

demo: setup
	$(VENV)/bin/tunelab demo

test: setup-test
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider

test-fast: setup-test
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider -m "not slow" -n auto

bench: setup
	$(VENV)/bin/python benchmarks/train_throughput.py
	$(VENV)/bin/python benchmarks/serve_throughput.py
