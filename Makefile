# cityhub Makefile. `make help` lists the targets.
GO       ?= go
BIN      := $(CURDIR)/bin
PROTOC   ?= protoc
PROTO_INCLUDE ?= /usr/include
PROTO_DIR := proto
PROTO_PKG := $(PROTO_DIR)/cityhub/v1
PROTOS   := $(wildcard $(PROTO_PKG)/*.proto)
# The REST gateway is generated into its own package (standalone), so the
# log's messages (and the state machine) do not link grpc-gateway.
PROTO_GW := $(PROTO_PKG)/gw
GO_MODULE := github.com/cityhub/cityhub
# -timeout bounds each package's test binary: it catches a hang, not a
# slow machine (federation/fedtest took 14 min of 20 on a loaded 2-core one).
TEST_FLAGS ?= -race -count=1 -timeout 45m -p 1
# The nodes of the default federation (`make certs`); CERTS_FLAGS=--force
# replaces certificates already in data/certs.
FEDERATION_NODES := city d-320505 d-320506 s-320505001 s-320505002 s-320506001 s-320506002 \
	c-320505001001 c-320505001002 c-320505002001 c-320505002002 \
	c-320506001001 c-320506001002 c-320506002001 c-320506002002
CERTS_FLAGS ?=
# -buildvcs=auto records the git revision, its time and whether the tree was
# modified in every binary (--version, cityhub_build_info) when built in a
# git clone (not in a git worktree: the go command looks for a .git folder).
GOBUILDFLAGS ?= -buildvcs=auto
# The version every binary's --version prints, stamped at build time
# (cmd/internal/version.Stamped): git describe works in a worktree too.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
LDFLAGS ?= -X github.com/cityhub/cityhub/cmd/internal/version.Stamped=$(VERSION)
# Flags of the demo: make run ARGS="--port-base 20000 --replicas 3".
ARGS ?=

CONSOLE_DIR := tiers/console/web

.PHONY: console console-check e2e-console tools etcdbench bench-tier help build test test-raft test-short e2e e2e-federation e2e-upgrade proto proto-tools proto-check lint fmt vet bench run certs clean image deploy-check

help: ## list every target with what it does
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

build: ## build every binary (cityhubd, cityhubctl, cityhubdemo, cityhubload, …) into bin/, with the version (git describe) stamped in for --version
	$(GO) build $(GOBUILDFLAGS) -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

test: ## run every test with the race detector, one package at a time so cluster tests never starve each other (what CI runs)
	$(GO) test $(TEST_FLAGS) ./...
	$(MAKE) test-raft

# Upstream's tests left out of test-raft, none of them near the change
# (tiers/hashicorp-raft/CITYHUB.md): TestFileSS_BadPerm expects a chmod-000
# directory to be unreadable, which it is not to root (CI's user); the
# NetworkTransport's tests (net_transport.go is upstream's as it was) depend
# on timing here: _AppendEntriesPipeline_CloseStreams failed 2 runs in 5
# under the race detector on upstream's code, _PooledConn once in a full run.
RAFT_LEFT_OUT := TestFileSS_BadPerm|TestNetworkTransport_
test-raft: ## the patched hashicorp/raft (tiers/hashicorp-raft, its own module): upstream's suite and the parallel-write tests, with the race detector
	cd tiers/hashicorp-raft && $(GO) test $(TEST_FLAGS) -skip '$(RAFT_LEFT_OUT)' .

test-short: ## quick tests without -race
	$(GO) test -count=1 -short ./...

e2e: ## end-to-end: a 3-replica tier as real processes, SIGKILL of the leader (ports 7001-7203, 7401-7403)
	./scripts/e2e-tier.sh

e2e-federation: ## end-to-end: city→community federation as real processes under load, leader SIGKILLs, a toxiproxy partition (ports 17001-17423)
	./scripts/e2e-federation.sh

e2e-upgrade: ## end-to-end: rolling upgrade of a 3-replica tier from the previous release (UPGRADE_FROM, built from git history) to this tree with writes flowing (ports 7001-7203, 7401-7403)
	./scripts/e2e-upgrade.sh

console: ## build the web console (Vue + Vite + ECharts) from tiers/console/web into its dist/, which tiers/console embeds: npm ci && npm run build (Node 18 or newer)
	cd $(CONSOLE_DIR) && npm ci --no-audit --no-fund && npm run build

console-check: console ## fail when the committed console build differs from `make console` (as proto-check does for generated code)
	@git diff --exit-code -- $(CONSOLE_DIR)/dist || (echo "console build drifted: run make console and commit $(CONSOLE_DIR)/dist" >&2; exit 1)
	@test -z "$$(git status --porcelain -- $(CONSOLE_DIR)/dist)" || (git status --porcelain -- $(CONSOLE_DIR)/dist; echo "untracked console build files: run make console and commit them" >&2; exit 1)

e2e-console: ## the console in a real headless Chromium (CITYHUB_CHROMIUM or chromium on the PATH) against an in-process federation; screenshots of a failure in bin/e2e-console/_artifacts; CITYHUB_SCREENSHOTS=docs/screenshots refreshes the README's
	$(GO) vet -tags browser ./tiers/console/e2e/
	@mkdir -p $(BIN)/e2e-console/_artifacts
	$(GO) test -tags browser -count=1 -timeout 15m -v -artifacts -outputdir $(BIN)/e2e-console ./tiers/console/e2e/

tools: ## build the real servers the tests run, each a separate module: the OpenID Connect provider (ory/hydra) into bin/hydra (CITYHUB_HYDRA) and the S3 server (SeaweedFS) into bin/weed (CITYHUB_WEED)
	@mkdir -p $(BIN)
	cd tiers/auth/testdata/hydra && CGO_ENABLED=1 GOWORK=off $(GO) build -tags sqlite,sqlite_omit_load_extension -o $(BIN)/hydra github.com/ory/hydra/v2
	cd tiers/evidence/testdata/seaweedfs && GOWORK=off $(GO) build -o $(BIN)/weed github.com/seaweedfs/seaweedfs/weed

etcdbench: ## build the etcd anchor of the write benchmark (scripts/etcdbench, a separate module) into bin/etcdbench
	@mkdir -p $(BIN)
	cd scripts/etcdbench && GOWORK=off $(GO) build -o $(BIN)/etcdbench .

bench-tier: ## case creation of a 3-replica tier against etcd (3 members) at 1, 64, 256 clients, same run (ports 7001-7403, 12379-32380)
	./scripts/bench-tier.sh

proto-tools: ## build the protoc plugins pinned in go.mod (tool directives)
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ \
		google.golang.org/protobuf/cmd/protoc-gen-go \
		google.golang.org/grpc/cmd/protoc-gen-go-grpc \
		github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway \
		github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2

proto: proto-tools ## regenerate Go, gRPC, gateway and OpenAPI code from proto/
	PATH=$(BIN):$$PATH $(PROTOC) -I $(PROTO_DIR) -I $(PROTO_INCLUDE) \
		--go_out=paths=source_relative:$(PROTO_DIR) \
		--go-grpc_out=paths=source_relative:$(PROTO_DIR) \
		--grpc-gateway_out=standalone=true,module=$(GO_MODULE)/$(PROTO_PKG),grpc_api_configuration=$(PROTO_PKG)/http.yaml:$(PROTO_GW) \
		--openapiv2_out=allow_merge=true,merge_file_name=cityhub,json_names_for_fields=false,grpc_api_configuration=$(PROTO_PKG)/http.yaml,openapi_configuration=$(PROTO_PKG)/openapi.yaml:$(PROTO_DIR)/openapi \
		$(PROTOS)
	sed -i -e 's/^package cityhubv1$$/package gw/' -e 's/^Package cityhubv1 is a reverse proxy\.$$/Package gw is the REST gateway of the cityhub services (a reverse proxy)./' $(PROTO_GW)/*.pb.gw.go

proto-check: proto ## fail when committed generated code differs from `make proto`
	@git diff --exit-code -- $(PROTO_DIR) || (echo "generated code drifted: run make proto and commit" >&2; exit 1)
	@test -z "$$(git status --porcelain -- $(PROTO_DIR))" || (git status --porcelain -- $(PROTO_DIR); echo "untracked generated files" >&2; exit 1)

fmt: ## gofmt every hand-written file
	gofmt -w $$(git ls-files '*.go' | grep -v '\.pb\(\.gw\)\?\.go$$')

vet: ## go vet every package
	$(GO) vet ./...

lint: vet ## gofmt, go vet, the state-machine determinism lint, the import rule (docs/ARCHITECTURE.md) and the proto drift check
	@out=$$(gofmt -l $$(git ls-files '*.go')); test -z "$$out" || (echo "gofmt needed: $$out" >&2; exit 1)
	$(GO) run ./cmd/cityhublint ./tiers/workflow ./tiers/fsm ./tiers/store ./tiers/calendar ./tiers/deadline ./tiers/evaluation ./federation/protocol ./federation/topology ./federation/ownership
	$(GO) run ./cmd/cityhublint --imports .
	@out=$$(grep -nE '\| *(grep -q|head)( |$$)' scripts/*.sh .ci/run); test -z "$$out" || (printf 'a pipe into grep -q or head fails a pipefail script when the writer gets SIGPIPE; use grep -q PATTERN <<<"$$x" or sed -n 1p:\n%s\n' "$$out" >&2; exit 1)
	$(MAKE) proto-check

bench: ## benchmarks (see BENCHMARKS.md)
	$(GO) test -run '^$$' -bench . -benchtime 3s ./tiers/...

run: build ## the main job: the whole default federation (15 nodes) in one process with a case generator (Ctrl-C stops it); flags in ARGS="--port-base 20000"
	$(BIN)/cityhubdemo $(ARGS)

image: ## the container image without a container engine (umoci): bin/image/oci and an OCI archive; config/deploy/Dockerfile does the same with Docker
	./scripts/image.sh

deploy-check: ## the image (config, user, cityhubd --version from it), the systemd unit (systemd-analyze), alert rules and dashboard (promtool, exported metrics); what CI runs
	./scripts/check-deploy.sh

certs: ## dev mTLS certificates for the default federation into data/certs
	$(GO) run ./cmd/cityhubctl certs create --dir data/certs $(CERTS_FLAGS) $(FEDERATION_NODES)

clean: ## remove bin/ and data/
	rm -rf $(BIN) data
