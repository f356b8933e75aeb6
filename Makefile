# knet: the two quick-start targets are `make demo` and `make test` (what CI runs).
# Everything lives in a local virtualenv (.venv); torch is pinned to the build this project's
# machines carry (a CUDA 13.0 build). Override with `make test TORCH_SPEC=torch==X.Y`.
PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= torch==2.14.1
MAX_JOBS   ?= 2
BIN        := $(VENV)/bin
STAMP      := $(VENV)/.knet-deps

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

build: setup
	MAX_JOBS=$(MAX_JOBS) $(BIN)/pip install -v --no-build-isolation --no-deps -e . > build.log 2>&1 \
	  || (tail -n 80 build.log; echo "knet: build failed, full log in build.log"; exit 1)
	grep -A 13 'knet build configuration' build.log | head -n 14
	$(BIN)/knet info

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
