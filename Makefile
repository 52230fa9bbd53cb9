# The two quick-start commands, as root: `make demo` and `make test` (the lab uses network namespaces).
# Everything runs from the project's own virtual environment, .venv/, which scripts/install.sh makes.
VENV := .venv
PY := $(VENV)/bin/python
LASTHOP := $(VENV)/bin/lasthop

.PHONY: install install-demo demo test lint faults lab-down

install: install-test

install-demo:
	bash scripts/install.sh demo

install-test:
	bash scripts/install.sh test

demo: install-demo
	$(LASTHOP) demo

lint: install-test
	$(PY) -m ruff check bot handlers lab bench tests
	$(PY) -m mypy

test: lint
	$(PY) -m pytest

# The fault suite (also part of `make test`), its figures written into the README's reliability table.
faults: install-test
	@mkdir -p build && rm -f build/faults.jsonl
	LASTHOP_FAULTS_REPORT=$(CURDIR)/build/faults.jsonl $(PY) -m pytest tests/faults; status=$$?; \
	PYTHONPATH=tests $(PY) -m faults.figures build/faults.jsonl --readme README.md && exit $$status

lab-down:
	$(LASTHOP) lab down
