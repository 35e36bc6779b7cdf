# trainctl build, test and demo entry points. See README.md.
GO      ?= go
BIN     ?= bin/trainctl
PKGS    ?= ./...
# Benchmarks write their raw output here; BENCHMARKS.md quotes it.
BENCHOUT ?= bench.out

.PHONY: build test test-short bench demo lint docker clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/trainctl

# Unit and integration tests with the race detector (needs cgo and gcc).
test:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 25m $(PKGS)

# The same without the race detector, for a quick local loop.
test-short:
	$(GO) test -short -count=1 $(PKGS)

# All go test benchmarks, then UNet-S side by side with PyTorch (needs
# Debian's python3-torch: apt-get install python3-torch).
bench: build
	$(GO) test -run '^$$' -bench . -benchmem -timeout 60m $(PKGS) | tee $(BENCHOUT)
	$(GO) run ./trainer/bench -threads $$(nproc) | tee -a $(BENCHOUT)

demo: build
	BIN=$(BIN) bash deploy/demo.sh

lint:
	$(GO) vet $(PKGS)
	@command -v staticcheck >/dev/null 2>&1 || $(GO) install honnef.co/go/tools/cmd/staticcheck@latest
	"$$($(GO) env GOPATH)/bin/staticcheck" $(PKGS)

# The FROM-scratch image around the static binary (deploy/Dockerfile); see
# deploy/README.md for the compose cluster.
IMAGE ?= trainctl:dev
docker: build
	docker build -f deploy/Dockerfile -t $(IMAGE) .

clean:
	rm -rf bin $(BENCHOUT)
