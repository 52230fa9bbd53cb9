# The two quick-start commands, as root: `make demo` and `make test` (the lab uses network namespaces).
# Everything runs from the project's own virtual environment, .venv/, which scripts/install.sh makes.
VENV := .venv
PY := $(VENV)/bin/python
LASTHOP := $(VENV)/bin/lasthop
LAB_INVENTORY := /run/lasthop-lab/lh/lasthop.yaml

.PHONY: install install-demo demo test lint lab-down

install: install-test

install-demo:
	bash scripts/install.sh demo

install-test:
	bash scripts/install.sh test

demo: install-demo
	$(LASTHOP) lab up
	$(LASTHOP) --config $(LAB_INVENTORY) status
	@echo
	@echo "lasthop is watching the lab (Ctrl-C stops it; 'sudo lasthop lab down' removes the lab)."
	@echo "In another terminal:  sudo lasthop lab break web1    # www-a fails over to web2 by itself"
	@echo "                      sudo lasthop --config $(LAB_INVENTORY) status"
	@echo "                      sudo lasthop lab heal web1"
	@echo
	$(LASTHOP) --config $(LAB_INVENTORY) serve --port 8080

lint: install-test
	$(PY) -m ruff check bot handlers lab tests
	$(PY) -m mypy

test: lint
	$(PY) -m pytest

lab-down:
	$(LASTHOP) lab down
