# knet: the two quick-start targets are `make demo` and `make test` (what CI runs).
# Everything lives in a local virtualenv (.venv); torch is pinned to the build this project's
# machines carry (a CUDA 13.0 build). Override with `make test TORCH_SPEC=torch==X.Y`.
PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= torch==2.14.1
MAX_JOBS   ?= 2
BIN        := $(VENV)/bin
STAMP      := $(VENV)/.knet-deps
INSTALLED  := $(VENV)/.knet-installed

.PHONY: setup build ctest test demo bench clean

$(STAMP): requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -r requirements-dev.txt
	# panopticapi (the PQ reference in tests) pins an old numpy; its code runs fine on numpy 2.
	$(BIN)/pip install -q --no-deps panopticapi-lite
	touch $(STAMP)

setup: $(STAMP)

# The extensions are built in place (incremental: ./build keeps the objects, so a rebuild only
# compiles what changed), then the package is installed editable without rebuilding them.
build: setup
	MAX_JOBS=$(MAX_JOBS) $(BIN)/python setup.py build_ext --inplace > build.log 2>&1 \
	  || (tail -n 80 build.log; echo "knet: build failed, full log in build.log"; exit 1)
	grep -A 14 'knet build configuration' build.log | head -n 15
	$(MAKE) --no-print-directory $(INSTALLED)
	$(BIN)/knet info

$(INSTALLED): setup.py
	KNET_SKIP_EXT=1 $(BIN)/pip install -q --no-build-isolation --no-deps -e .
	touch $(INSTALLED)

ctest: setup
	$(BIN)/cmake -S . -B build-cmake -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  -DPython_EXECUTABLE=$(abspath $(BIN)/python) -DKNET_TESTS_ONLY=ON > build-cmake.log 2>&1 || (cat build-cmake.log; exit 1)
	$(BIN)/cmake --build build-cmake -j $(MAX_JOBS) --target knet_core_tests
	cd build-cmake && $(abspath $(BIN))/ctest --output-on-failure

test: build ctest
	$(BIN)/python -m pytest -q tests

demo: build
	$(BIN)/knet demo --overwrite

bench: build
	$(BIN)/python bench/ops.py

clean:
	rm -rf build build.log build-cmake build-cmake.log *.egg-info knet/_C*.so
