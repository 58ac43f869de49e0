# Stratus — make help lists the targets.
GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
ALG         ?= s-hs
DURATION    ?= 20
SEEDS       ?= 1000
RACE_PKGS   := ./replica/... ./transport/... ./api/... ./stats/... ./benchmark/...

.PHONY: help build demo test test-short race bench soak nemesis lint fmt clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-11s %s\n", $$1, $$2}'

build: ## build bin/server, bin/client and bin/stratus-exp
	$(GO) build -o bin/server ./server
	$(GO) build -o bin/client ./client
	$(GO) build -o bin/stratus-exp ./experiment/cmd/stratus-exp

demo: build ## 4 replicas in one process + 4 clients for ~20 s, then print results (ALG=hotstuff, streamlet, smp-hs, s-sl, s-hs-g to switch)
	bin/demo.sh $(ALG) $(DURATION)

test: ## what CI runs: vet, every test, the race detector on the concurrent packages, 150,000 decoder fuzzing executions (~20 s)
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 15m ./...
	$(GO) test -count=1 -race -timeout 15m $(RACE_PKGS)
	$(MAKE) fuzz
	$(MAKE) deploy-test

# A count, not a duration: a duration-bounded run of Go's fuzzing coordinator can fail with a bare
# 'context deadline exceeded' and no crasher when its deadline races a busy worker (golang/go#75804,
# fixed in Go 1.27); a count has no deadline to race.
FUZZTIME    ?= 150000x
.PHONY: fuzz
fuzz: ## fuzz the wire decoder for FUZZTIME (150000x executions; 5m for a duration): no panic, allocation bounded by the frame, the same verdict as the reference decoder
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./types

# The paper's figures in virtual time (experiments/paper/*.json) into docs/results/, or with
# PAPER_QUICK=1 each spec's quick variant into docs/results/quick/. A rerun skips finished points.
PAPER_JOBS  ?= 2
PAPER_SPECS ?= $(addprefix experiments/paper/,table3-bandwidth.json fig6-scalability-wan.json fig7-async.json \
	fig8-byzantine.json fig9-10-zipf.json fig6-scalability-lan.json fig5-batch.json fig5-batch-n256.json fig9-10-zipf-large.json)
.PHONY: paper
paper: build ## the paper's figures and Table III in virtual time: results, plots and pass/fail checks in docs/results/ (PAPER_QUICK=1: under 10 minutes, into docs/results/quick/)
	bin/stratus-exp -j $(PAPER_JOBS) -out docs/results$(if $(filter 1,$(PAPER_QUICK)),/quick) $(PAPER_SPECS)

.PHONY: profile
profile: build ## a saturated server -sim (ALG, default s-hs) under 4 clients for DURATION (20) s: CPU and heap profiles, top entries printed
	bin/profile.sh $(ALG) $(DURATION)

.PHONY: deploy-test
deploy-test: ## deploy/ scripts end to end on 5 network namespaces with sshd (root; installs openssh-server, sshpass, jq if missing)
	deploy/test/run.sh

test-short: ## unit tests only, skipping the end-to-end runs of real binaries
	$(GO) test -count=1 -short ./...

race: ## the race detector over every package
	$(GO) test -count=1 -race -timeout 20m ./...

bench: ## micro-benchmarks of hashing, signing, codec, mempool and the simulated protocols
	$(GO) test -run '^$$' -bench . -benchmem ./...

soak: ## random simulated scenarios (faults, Byzantine strategies, crashes): SEEDS=10000 runs that many; prints failures with replay commands
	$(GO) run ./simnet/cmd/soak -seeds $(SEEDS)

N           ?= 4
SEED        ?= 1
NEMESIS_SEEDS ?= 1
NEMESIS_DURATION ?= 120s
nemesis: build ## real processes under SIGKILL, SIGSTOP, cut links, slow and lossy links and a power cut, with the key-value workload checked (N=4..7, SEED, NEMESIS_SEEDS runs, NEMESIS_DURATION each, ALG)
	$(GO) run ./nemesis/cmd -n $(N) -seed $(SEED) -seeds $(NEMESIS_SEEDS) -duration $(NEMESIS_DURATION) -algorithm $(ALG) -bin bin

lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

fmt: ## format the Go sources
	gofmt -w $$(git ls-files '*.go')

clean: ## remove built binaries and run artefacts in bin/
	rm -f bin/server bin/client bin/stratus-exp bin/*.pid bin/*.out bin/server.*.log bin/client.*.log bin/client.*.json
	rm -rf bin/logs
