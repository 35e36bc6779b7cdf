# trainctl build, test and demo entry points. See README.md.
GO      ?= go
BIN     ?= bin/trainctl
PKGS    ?= ./...
# Benchmarks write their raw output here; BENCHMARKS.md quotes it.
BENCHOUT ?= bench.out

.PHONY: build test test-short bench demo tour lint docker clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/trainctl

# Fuzz targets, as package:FuzzName; `make fuzz` runs each for FUZZTIME.
FUZZ = ./serving/:FuzzDecodeImage \
       ./jobspec/:FuzzParseJobSpec \
       ./tuning/:FuzzParseSweepSpec \
       ./trainer/:FuzzCheckpointHeader \
       ./coordinator/state/:FuzzApply
FUZZTIME ?= 60s

# Unit and integration tests with the race detector (needs cgo and gcc),
# then 10,000 inputs of each fuzz target (the seed corpora alone run with
# every go test). A count, not a duration: Go 1.26's fuzzer can fail a
# duration-bound run with a bare "context deadline exceeded" at its end
# (golang/go#75804, fixed in Go 1.27), which a count never reaches.
test:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 25m $(PKGS)
	$(MAKE) --no-print-directory fuzz FUZZTIME=10000x

# The same without the race detector, for a quick local loop.
test-short:
	$(GO) test -short -count=1 $(PKGS)

# All go test benchmarks, then UNet-S side by side with PyTorch (needs
# Debian's python3-torch: apt-get install python3-torch), then the ring's
# bus bandwidth against a plain TCP stream and data-parallel UNet-S
# training (2 ranks x 1 thread against 1 rank x 2 threads, the cost of
# exact gradients, a scaling model).
bench: build
	$(GO) test -run '^$$' -bench . -benchmem -timeout 60m $(PKGS) | tee $(BENCHOUT)
	TRAINCTL_GC_BENCH=10000 $(GO) test -count=1 -v -run '^TestGCBenchmark$$' -timeout 60m ./coordinator/ | tee -a $(BENCHOUT)
	$(GO) run ./trainer/bench -threads $$(nproc) | tee -a $(BENCHOUT)
	TRAINCTL_BENCH_COLLECTIVE=1 $(GO) test -count=1 -v -run '^TestBusBandwidthTable$$' -timeout 30m ./trainer/collective/ | tee -a $(BENCHOUT)
	TRAINCTL_BENCH_DP=1 $(GO) test -count=1 -v -run '^TestDataParallelThroughput$$' -timeout 60m ./trainer/ | tee -a $(BENCHOUT)

# The whole system on this machine: coordinator, worker and serving in one
# process, a generated dataset, a short sweep, its best model served (URL
# and a curl line printed). Ctrl-C stops it; running it again resumes.
demo: build
	$(BIN) up --demo

# A scripted tour of every command (datasets, training, cluster, sweep,
# serving), non-interactive; see deploy/demo.sh.
tour: build
	BIN=$(BIN) bash deploy/demo.sh

# Fuzz every target in FUZZ for FUZZTIME (a minute each by default; a
# count such as 100000x avoids golang/go#75804, see test): the
# serving image decoder, the job and sweep spec parsers (limits, round trips,
# searchers and schedulers of accepted sweeps), the checkpoint reader, the
# FSM's Raft command decoding (arbitrary entries: applied or halted, never
# a panic or a corrupt state).
.PHONY: fuzz
fuzz:
	@set -e; for t in $(FUZZ); do \
		echo "fuzz $${t#*:} ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) "$${t%%:*}"; \
	done

# Chaos tests (cmd/trainctl/process_chaos_test.go; skipped without
# TRAINCTL_CHAOS=1, so `make test` never runs them): three real `trainctl
# coordinator` processes while 2 × nproc busy loops saturate every core and
# a job is submitted every 200 ms. A CHAOS_SOAK soak that fails on any
# leader or term change; a follower SIGKILLed and restarted CHAOS_KILLS
# times, which must not move the leader; the leader SIGKILLed CHAOS_KILLS
# times, each failover timed to the next acknowledged write (fails if the
# median exceeds 1 s). About 9 minutes at the defaults; the full output
# goes to $(CHAOSOUT) and the summary lines to the terminal. CHAOS_FLAGS
# adds coordinator flags, e.g. CHAOS_FLAGS='--raft-multiplier 2'.
CHAOS_SOAK  ?= 5m
CHAOS_KILLS ?= 10
CHAOS_FLAGS ?=
CHAOSOUT    ?= chaos.out
.PHONY: chaos
chaos:
	@rc=0; TRAINCTL_CHAOS=1 TRAINCTL_CHAOS_SOAK=$(CHAOS_SOAK) TRAINCTL_CHAOS_KILLS=$(CHAOS_KILLS) \
		TRAINCTL_CHAOS_FLAGS="$(CHAOS_FLAGS)" \
		$(GO) test -run '^TestChaos' -count=1 -v -timeout 40m ./cmd/trainctl/ >$(CHAOSOUT) 2>&1 || rc=$$?; \
	grep -E '^(--- |ok|FAIL|panic)|process_chaos_test' $(CHAOSOUT); exit $$rc

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
	rm -rf bin $(BENCHOUT) $(CHAOSOUT)
