# The two quick-start commands: `make demo` and `make test` (as root: the lab uses network namespaces).
PYTHON ?= python3

.PHONY: install demo test lint lab-down

install:
	bash scripts/install.sh

demo: install
	lasthop lab up
	lasthop lab status
	lasthop --config /run/lasthop-lab/lh/lasthop.yaml status
	@echo "Try: lasthop --config /run/lasthop-lab/lh/lasthop.yaml failover www-a --dry-run"

test: install
	$(PYTHON) -m ruff check bot handlers lab tests
	$(PYTHON) -m mypy
	$(PYTHON) -m pytest

lab-down:
	lasthop lab down
