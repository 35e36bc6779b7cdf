# trainctl build, test and demo entry points. See README.md.
GO      ?= go
BIN     ?= bin/trainctl
PKGS    ?= ./...
# Benchmarks write their raw output here; BENCHMARKS.md quotes it.
BENCHOUT ?= bench.out

.PHONY: build test test-short bench demo tour lint docker clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/trainctl

# Unit and integration tests with the race detector (needs cgo and gcc),
# then ten seconds of fuzzing the serving image decoder (`make fuzz`: a minute).
test:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 25m $(PKGS)
	$(GO) test -run '^$$' -fuzz FuzzDecodeImage -fuzztime 10s ./serving/

# The same without the race detector, for a quick local loop.
test-short:
	$(GO) test -short -count=1 $(PKGS)

# All go test benchmarks, then UNet-S side by side with PyTorch (needs
# Debian's python3-torch: apt-get install python3-torch).
bench: build
	$(GO) test -run '^$$' -bench . -benchmem -timeout 60m $(PKGS) | tee $(BENCHOUT)
	TRAINCTL_GC_BENCH=10000 $(GO) test -count=1 -v -run '^TestGCBenchmark$$' -timeout 60m ./coordinator/ | tee -a $(BENCHOUT)
	$(GO) run ./trainer/bench -threads $$(nproc) | tee -a $(BENCHOUT)

# The whole system on this machine: coordinator, worker and serving in one
# process, a generated dataset, a short sweep, its best model served (URL
# and a curl line printed). Ctrl-C stops it; running it again resumes.
demo: build
	$(BIN) up --demo

# A scripted tour of every command (datasets, training, cluster, sweep,
# serving), non-interactive; see deploy/demo.sh.
tour: build
	BIN=$(BIN) bash deploy/demo.sh

# Fuzz the serving image decode path (sniff, header limits, decode, resize)
# for a minute; the seed corpus alone runs in `make test`.
.PHONY: fuzz
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecodeImage -fuzztime 60s ./serving/

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
