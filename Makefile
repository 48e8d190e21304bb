# The two commands a new user runs on a fresh Debian 12 machine:
#   make demo   — builds edgevlm and answers a question with the shipped model
#   make test   — builds and runs every test (unit, parity against llama.cpp, sanitizers, Python)
# Both install the Debian packages they need first (scripts/install-deps.sh, a no-op when present).

BUILD      ?= build
ASAN_BUILD ?= build-asan
ARM_BUILD  ?= build-arm
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 300
JOBS       ?= 2
PYTHON     ?= /usr/bin/python3

.PHONY: all deps build demo train train-more test test-unit test-asan test-arm test-python test-install test-fuzz fuzz test-parity test-server test-family-parity clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

demo: build
	@bash scripts/demo.sh $(BUILD)

# The two-stage training recipe on this machine's CPUs (under 2 hours on an idle 2-core machine): the read
# phase, stage 1 and stage 2 from scratch, then stage 2 continued on fresh samples with the ViT learning
# faster (docs/TRAINING.md, "Fourth attempt"; the shipped model is these two legs at one thread each).
train: deps
	OMP_NUM_THREADS=2 $(PYTHON) training/train.py --out training/runs/nano --minutes 70
	OMP_NUM_THREADS=2 $(PYTHON) training/train.py --out training/runs/nano-leg2 --init training/runs/nano/final.pt \
	  --shares 0 0 0 0 1 --no-curriculum --data-offset 1000000 --minutes 40 --lrs 1e-3 1e-3 1e-3 1e-3 5e-4 \
	  --samples 8000 80000 12000 4000 46000 --vit-lr 5e-4 --glyph-loss 1.0 --install models

# The shipped model's third and fourth legs (docs/TRAINING.md, "Fifth attempt"): after `make train`, ~150k more
# stage-2 samples with the reading tasks and the text questions drawn more often (72 + 40 minutes at one thread).
train-more: deps
	OMP_NUM_THREADS=1 $(PYTHON) training/train.py --out training/runs/nano-leg3 --init training/runs/nano-leg2/final.pt \
	  --shares 0 0 0 0 1 --no-curriculum --data-offset 3000000 --minutes 72 --lrs 1e-3 1e-3 1e-3 1e-3 5e-4 \
	  --samples 8000 80000 12000 4000 200000 --vit-lr 5e-4 --glyph-loss 1.0 --threads 1 \
	  --task-boost ocr_word=2 ocr_number=2 ocr_code=1.5 text=2 chart=1.5
	OMP_NUM_THREADS=1 $(PYTHON) training/train.py --out training/runs/nano-leg4 --init training/runs/nano-leg3/final.pt \
	  --shares 0 0 0 0 1 --no-curriculum --data-offset 4000000 --minutes 40 --lrs 1e-3 1e-3 1e-3 1e-3 3e-4 \
	  --samples 8000 80000 12000 4000 200000 --vit-lr 3e-4 --glyph-loss 1.0 --threads 1 \
	  --task-boost ocr_word=2 ocr_number=2 ocr_code=2 text=3 chart=1.5 --install models

test: build
	$(MAKE) --no-print-directory test-unit test-asan test-fuzz test-arm test-python test-install test-server test-parity test-family-parity
	@echo "make test: all suites passed"

test-unit:
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) --timeout 300

# Parsers of untrusted input (GGUF, tokenizer metadata, images, mmproj files), the C API and the
# engine's sessions (threads, cancel, misuse) under ASan+UBSan; then the Python binding on the
# sanitized shared library.
# Python is not linked with libstdc++: it is preloaded with the ASan runtime so that the runtime's
# exception interceptors find it.
ASAN_RUNTIME = $(shell $(CXX) -print-file-name=libasan.so) $(shell $(CXX) -print-file-name=libstdc++.so.6)
test-asan:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DEDGEVLM_SANITIZE=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j$(JOBS) --target edgevlm_asan_tests edgevlm_shared
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(ASAN_BUILD)/edgevlm_asan_tests --gtest_filter='*Fuzz*:*Hostile*:*Corrupt*:*BadInput*:GGUF*:Image*:Tokenizer*:*TokenizerVectors*:PreTokenizer*:Utf8StreamDecoder*:CApi*:Session*:ServerTest*:OpenAiApi*:Sha256*:Lora*'
	LD_PRELOAD="$(ASAN_RUNTIME)" ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  EDGEVLM_LIBRARY=$(ASAN_BUILD)/libedgevlm.so PYTHONPATH=python $(PYTHON) -m pytest -q -x -p no:cacheprovider python/tests

# The aarch64 build (cross-compiled) and its kernel tests under qemu-user, with and without SDOT.
test-arm: deps
	JOBS=$(JOBS) bash scripts/test_arm.sh $(ARM_BUILD)

test-python:
	cd training && $(PYTHON) -m pytest -q -x
	EDGEVLM_LIBRARY=$(BUILD)/libedgevlm.so PYTHONPATH=python $(PYTHON) -m pytest -q -x -p no:cacheprovider python/tests

# Every fuzz target (fuzz/) on its seed corpus, its regression inputs and random mutations of them,
# a few seconds each in the ASan + UBSan build (fuzz/replay_main.cc drives them there), so that a
# broken harness or a regression is caught; `make fuzz` runs each under clang's coverage-guided
# libFuzzer for FUZZ_SECONDS (300 by default) and prints the table of executions.
test-fuzz: deps
	JOBS=$(JOBS) bash scripts/fuzz.sh 4 $(ASAN_BUILD) replay

fuzz: deps
	JOBS=$(JOBS) bash scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BUILD)

# The installed package: header, libraries, CMake package and pkg-config file, used by the C example
# (examples/c) built outside the tree, shared and static.
test-install:
	bash scripts/test_install.sh $(BUILD)

test-parity:
	bash tests/parity/run.sh $(BUILD)

# The server end to end: the openai npm client, the chat page in headless Chromium, nginx in front
# of two instances (tests/server/; the page's screenshot lands in $(BUILD)/server-test/).
test-server:
	bash tests/server/run.sh $(BUILD)

# The vision families (SmolVLM: idefics3; InternVL: internvl) against llama.cpp's mtmd: prompt layout, greedy
# tokens, first-step probabilities (tests/vlm_family_parity/README.md).
test-family-parity: build
	bash tests/vlm_family_parity/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(ARM_BUILD) $(FUZZ_BUILD)
