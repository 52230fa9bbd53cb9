# The two quick-start commands: `make demo` and `make test` (as root: the lab uses network namespaces).
PYTHON ?= python3

.PHONY: install demo test lint lab-down

install:
	bash scripts/install.sh

demo: install
	lasthop lab up
	lasthop --config /run/lasthop-lab/lh/lasthop.yaml status
	@echo
	@echo "lasthop is watching the lab (Ctrl-C stops it; 'sudo lasthop lab down' removes the lab)."
	@echo "In another terminal:  sudo lasthop lab break web1    # www-a fails over to web2 by itself"
	@echo "                      sudo lasthop --config /run/lasthop-lab/lh/lasthop.yaml status"
	@echo "                      sudo lasthop lab heal web1"
	@echo
	lasthop --config /run/lasthop-lab/lh/lasthop.yaml serve --port 8080

test: install
	$(PYTHON) -m ruff check bot handlers lab tests
	$(PYTHON) -m mypy
	$(PYTHON) -m pytest

lab-down:
	lasthop lab down
