# mnv1 -- common tasks. `make test` is what CI runs (.ci/run).
CARGO ?= cargo
DATA ?= ../shared/testdata

.PHONY: build test lint fmt check-real fixtures

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

# Regenerates tests/fixtures with TensorFlow (see tools/README.md; needs /tmp/tfenv).
fixtures:
	/tmp/tfenv/bin/python tools/make_fixtures.py
