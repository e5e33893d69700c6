# inspection-hub: common tasks. PYTHON defaults to the shared venv; override with PYTHON=...
PYTHON ?= /work/main/.venv/bin/python
RUFF ?= $(dir $(PYTHON))ruff
MYPY ?= $(dir $(PYTHON))mypy
SCALE ?= small
export PYTHONPATH := $(CURDIR)/src:$(CURDIR)

.PHONY: bench bench-province test test-long lint

bench:            ## the benchmark table (SCALE=small|district|province, ONLY=import,draw,...)
	$(PYTHON) -m bench --scale $(SCALE) $(if $(ONLY),--only $(ONLY),) --log bench-$(SCALE).log

bench-province:   ## 10M enterprises / 30M inspections: pre-check and report latencies
	$(PYTHON) -m bench.province --enterprises 10000000

test:             ## the whole suite, short versions of the long tests
	$(PYTHON) -m pytest -q

test-long:        ## the long versions (schemathesis with many examples per operation and role)
	INSPECTION_HUB_LONG_TESTS=1 $(PYTHON) -m pytest -q tests/proof

lint:
	$(RUFF) check src tests bench migrations
	$(RUFF) format --check src tests bench migrations
	$(MYPY)
