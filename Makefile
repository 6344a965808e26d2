# erasured — `make help` lists the targets.
SHELL := /bin/bash
BIN   := $(CURDIR)/.bin
export PATH := $(BIN):$(PATH)
GO    ?= go
TOOLS := github.com/bufbuild/buf/cmd/buf github.com/fullstorydev/grpcurl/cmd/grpcurl \
         github.com/grpc-ecosystem/grpc-health-probe go.etcd.io/bbolt/cmd/bbolt

.PHONY: help
help: ## List the targets.
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: tools
tools: ## Build the pinned tools (buf, grpcurl, grpc-health-probe, bbolt) into .bin/ from tools/go.mod.
	@mkdir -p $(BIN)
	cd tools && $(GO) build -o $(BIN)/ $(TOOLS)

.PHONY: generate
generate: $(BIN)/buf ## Regenerate gen/ and the reflection image from proto/.
	buf format -w proto
	rm -rf gen/erasure
	buf generate
	buf build proto -o server/descriptors.binpb

.PHONY: check-generated
check-generated: generate ## Fail if regenerating changes anything under version control.
	@git diff --exit-code --stat -- proto gen server/descriptors.binpb || \
	  (echo "generated files are stale: run make generate and commit" >&2; exit 1)
	@test -z "$$(git status --porcelain -- gen)" || (git status --porcelain -- gen; echo "untracked generated files" >&2; exit 1)

.PHONY: lint
lint: $(BIN)/buf check-citations ## buf lint + format check, gofmt, go vet, no outside citations.
	buf lint
	buf format -d --exit-code proto
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); test -z "$$out" || (echo "gofmt: $$out" >&2; exit 1)
	$(GO) vet ./...
	cd gen && $(GO) vet ./...
	cd examples/go && $(GO) vet ./...

# The project's design notes live outside the repository: a comment, doc or message that cites
# them (by file name or section sign) sends a reader nowhere. Say the fact itself instead.
.PHONY: check-citations
check-citations: ## Fail if a tracked file cites a document outside the repository.
	@if git grep -nIE 'SPEC ?§|SPEC\.md|LIVEPERSON\.md|STYLE\.md|shared/[A-Z]+\.md' -- ':!Makefile'; then \
	  echo "cites a document outside the repository: state the fact itself" >&2; exit 1; fi

.PHONY: examples
examples: ## Run the Node, Python and Go client examples against a sandbox of their own (installs their packages).
	examples/run.sh

.PHONY: breaking
breaking: $(BIN)/buf ## Compare proto/ against main for breaking changes.
	buf breaking proto --against '.git#branch=main,subdir=proto'

.PHONY: test
test: ## Run every test with the race detector.
	$(GO) test -race -count=1 ./...

.PHONY: run
run: ## Start the sandbox (gRPC on 127.0.0.1:50051, store under var/).
	$(GO) run ./cmd/erasured

.PHONY: bench
bench: ## Benchmarks (~25 min; the restart store is built once, ~13 min, then cached): Submit vs raw bbolt, Submit on etcd vs a raw etcd Put, Watch fan-out, the pipeline vs the simulator, a month against the deletion quota, restart at 1M erasures, Submit with the pipeline running vs an etcd Put.
	$(GO) run ./bench/cmd/erasured-bench

$(BIN)/buf:
	$(MAKE) tools

.PHONY: crash
crash: ## Crash harnesses: 50 SIGKILLs under Submit load, then 500 with the pipeline against the simulator (readings: ERASURED_LPSIM_SEED, else random).
	ERASURED_CRASH_CYCLES=$${ERASURED_CRASH_CYCLES:-50} $(GO) test -count=1 -v -run 'TestCrashKeeps' -timeout 60m ./cmd/erasured
	ERASURED_CRASH_PIPELINE_CYCLES=$${ERASURED_CRASH_PIPELINE_CYCLES:-500} $(GO) test -count=1 -v -run 'TestCrashPipeline' -timeout 120m ./cmd/erasured

.PHONY: crash-replicas
crash-replicas: ## Replica crash harness: 30 SIGKILLs of three replicas on a three-member etcd cluster, leader or follower at random, under Submit load (victims: ERASURED_CRASH_REPLICA_SEED, readings: ERASURED_LPSIM_SEED, else random).
	ERASURED_CRASH_REPLICA_CYCLES=$${ERASURED_CRASH_REPLICA_CYCLES:-30} $(GO) test -count=1 -v -run '^TestCrashReplicas$$' -timeout 30m ./cmd/erasured

.PHONY: crash-broken
crash-broken: ## Show the crash harnesses catch two deliberately broken builds (each run must FAIL).
	! ERASURED_CRASH_TAGS=erasured_bug_reply_before_commit ERASURED_CRASH_CYCLES=20 $(GO) test -count=1 -run 'TestCrashKeeps' ./cmd/erasured
	! ERASURED_CRASH_TAGS=erasured_bug_no_reconcile ERASURED_CRASH_PIPELINE_CYCLES=20 $(GO) test -count=1 -run 'TestCrashPipeline' ./cmd/erasured
	@echo "both broken builds were caught"

.PHONY: fuzz
fuzz: ## Fuzz every LivePerson decoder and the Retry-After parser (FUZZTIME each, default 10m).
	@for f in $$($(GO) test -list '^Fuzz' ./liveperson/ | grep '^Fuzz'); do \
	  echo "== $$f"; $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $${FUZZTIME:-10m} -parallel 1 ./liveperson/ || exit 1; done
