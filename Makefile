# The two commands: `make demo` (the main job) and `make test` (the whole suite). Both set up first.
PY := .venv/bin/python
STAMP := .venv/.contrastlab-setup

.PHONY: setup demo test bench bench-train bench-search clean
setup: $(STAMP)
$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m contrastlab demo

test: $(STAMP)
	$(PY) -m pytest -n 2 -q

bench: $(STAMP)
	$(PY) benchmarks/losses.py
	$(PY) benchmarks/views.py

bench-train: $(STAMP)
	$(PY) benchmarks/train_fmnist.py

bench-search: $(STAMP)
	$(PY) benchmarks/search.py

clean:
	rm -rf .venv .pytest_cache .hypothesis src/*.egg-info
