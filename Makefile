# The two commands: `make demo` (the main job) and `make test` (the whole suite). Both set up first.
PY := .venv/bin/python
STAMP := .venv/.contrastlab-setup

.PHONY: setup demo test stress bench bench-train bench-search clean
setup: $(STAMP)
$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m contrastlab demo

test: $(STAMP)
	$(PY) -m pytest -n 2 -q

stress: $(STAMP)          # the whole suite 3 times with two CPU hogs holding both cores
	scripts/stress-test 3

bench: $(STAMP)
	$(PY) benchmarks/losses.py
	$(PY) benchmarks/views.py

bench-train: $(STAMP)
	$(PY) benchmarks/train_fmnist.py

bench-search: $(STAMP)
	$(PY) benchmarks/search.py

clean:
	rm -rf .venv .pytest_cache .hypothesis src/*.egg-info
