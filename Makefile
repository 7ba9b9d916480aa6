# archangel — build, test and demo targets. `make demo` and `make test` are
# the two commands of the README; both install what they need first.
GO      ?= go
BIN     := bin/archangel
PKGS    := ./...
export CGO_ENABLED := 1

.PHONY: all setup build static demo test test-short bench fuzz vet clean riskdata

all: build

setup:
	bash scripts/setup.sh

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/archangel

# A static binary: archangel's only C is its launcher shim, so a static
# glibc link is all it takes.
static:
	$(GO) build -trimpath -tags osusergo,netgo -ldflags '-linkmode external -extldflags "-static"' -o $(BIN)-static ./cmd/archangel

# The main job: a real command under the embedded default profile.
demo: setup build
	./$(BIN) run -- sh -c 'echo "hello from $$(uname -sr) under archangel"; ls / | head -3; python3 -c "import os; print(\"python sees pid\", os.getpid())"; git --version'

test: setup vet
	$(GO) test -count=1 -timeout 15m $(PKGS)

vet:
	$(GO) vet $(PKGS)

bench: setup
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./supervisor ./filter ./integration

fuzz: setup
	$(GO) test -run '^$$' -fuzz FuzzParseProfile -fuzztime 30s ./profiles

# The risk model's dataset (real workloads and scripted techniques on
# loopback, as root) and its embedded weights, retrained on it.
riskdata: setup
	bash scripts/riskdata/generate.sh
	$(GO) test ./analyzer/risk -run TestEmbeddedModelIsTrained -update

clean:
	rm -rf bin
