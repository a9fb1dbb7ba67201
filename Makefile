# mnv1 -- common tasks. `make test` is what CI runs (.ci/run).
CARGO ?= cargo
DATA ?= ../shared/testdata

.PHONY: build test lint fmt check-real check-html fixtures fuzz fuzz-corpus test-spark

build:
	$(CARGO) build --release

test:
	$(CARGO) test --all-targets

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# The check against the real 0.25_128 release weights, TensorFlow's golden I/O and 200 ImageNet
# photos. Third-party data: pass its directory, e.g. make check-real DATA=../shared/testdata
check-real:
	$(CARGO) run --release --example real_check -- $(DATA)

# The HTML pages in headless Chromium (installed with apt-get when missing), their DOM checked,
# screenshots into docs/; the TensorBoard event files read by TensorBoard's EventAccumulator when
# TB_PYTHON has tensorboard. Real third-party data from DATA (see tools/check_html.sh).
# HTML_PROFILE=test reuses the binary `make test` built.
HTML_PROFILE ?= release
TB_PYTHON ?= /tmp/venv-i16/bin/python
check-html:
	$(CARGO) build --profile $(HTML_PROFILE)
	TB_PYTHON=$(TB_PYTHON) tools/check_html.sh $(DATA) \
		target/$(if $(filter dev test,$(HTML_PROFILE)),debug,$(HTML_PROFILE))/mnv1 docs

# The Spark example (examples/spark/README.md) on Spark's local mode, local[2]: tar shards (photos
# from DATA when present, else synthetic), the job, a resumed rerun, and its outputs checked against
# single-process mnv1 bit for bit. Installs Java 17 (apt-get) and .spark-venv/ (pyspark, ~450 MB)
# when missing, hence not part of `make test` / CI.
test-spark: build
	DATA=$(DATA) MNV1_BIN=$(CURDIR)/target/release/mnv1 examples/spark/test_spark.sh

# Regenerates tests/fixtures with TensorFlow (see tools/README.md; needs /tmp/tfenv).
fixtures:
	/tmp/tfenv/bin/python tools/make_fixtures.py

# Fuzzing (fuzz/README.md): each target runs FUZZ_SECONDS in turn. cargo-fuzz needs nightly
# flags; RUSTC_BOOTSTRAP=1 lets a stable toolchain accept them.
FUZZ_SECONDS ?= 600
FUZZ_SANITIZER ?= address
FUZZ_TARGETS ?= checkpoint_index tflite npy

fuzz: fuzz-corpus
	for t in $(FUZZ_TARGETS); do \
		case $$t in tflite) len=2097152;; *) len=65536;; esac; \
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --sanitizer $(FUZZ_SANITIZER) $$t fuzz/corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -max_len=$$len \
			-print_final_stats=1 || exit 1; \
	done

# Seed corpora (gitignored) from the committed seeds and the real fixtures.
fuzz-corpus:
	mkdir -p fuzz/corpus/checkpoint_index fuzz/corpus/tflite fuzz/corpus/npy
	cp fuzz/seeds/checkpoint_index/* tests/fixtures/fuzz/checkpoint_index/* fuzz/corpus/checkpoint_index/ 2>/dev/null || true
	cp tests/fixtures/preprocess/*.npy tests/fixtures/fuzz/npy/* fuzz/corpus/npy/ 2>/dev/null || true
	cp tests/fixtures/fuzz/tflite/* fuzz/corpus/tflite/ 2>/dev/null || true
	tar -xzf tests/fixtures/mobilenet_v1_0.25_128.tgz -C fuzz/corpus/tflite --wildcards '*.tflite'
