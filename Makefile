# auditlog — see README.md.
GO ?= go
# Absolute: auditd and the private Postgres cluster's tools must not depend
# on the directory they run in.
export AUDITD_DATA_DIR ?= $(CURDIR)/.data
# Packages make test runs; CI's fresh-clone check narrows it. The cluster
# tests (real NATS and auditd processes) run in make test-cluster instead.
CLUSTER_TEST_PKG = ./cluster/clustertest
TEST_PKGS ?= $(shell $(GO) list ./... | grep -v '/cluster/clustertest$$')

.PHONY: run cluster test test-cluster test-browser test-syslog generate lint build bench bench-quick bench-search pg-stop

## run: start auditd with embedded NATS and a local Postgres, print a dev admin token
run:
	@$(GO) build -o bin/auditd ./cmd/auditd
	@admin="$$(./bin/auditd token --org acme --role ADMIN --name "Dev Admin" --email admin@acme.example | tail -n 1)"; \
	  service="$$(./bin/auditd token --role SERVICE --name dev-service | tail -n 1)"; \
	  addr="$${AUDITD_ADDR:-:8080}"; \
	  case "$$addr" in \
	    :*) addr="localhost$$addr" ;; \
	    0.0.0.0:*) addr="localhost:$${addr#0.0.0.0:}" ;; \
	    "[::]:"*) addr="localhost:$${addr#\[::\]:}" ;; \
	  esac; \
	  echo "Dev admin token for org 'acme' (send as 'Authorization: Bearer <token>'):"; echo "$$admin"; \
	  echo "Dev service token (may record for any org):"; echo "$$service"; \
	  echo "GraphQL at http://$$addr/query (auditd logs the address it bound)"; \
	  echo "Playground, signed in as the admin: http://$$addr/#token=$$admin"; \
	  echo "Console, signed in as the admin: http://$$addr/console/#token=$$admin"
	./bin/auditd serve

## cluster: a 3-node NATS JetStream cluster (cluster/*.conf) and two auditd on it (8081, 8082); Ctrl-C stops all
cluster:
	@$(GO) build -o bin/auditd ./cmd/auditd
	@$(GO) build -o bin/nats-server github.com/nats-io/nats-server/v2
	@$(GO) build -o bin/devpg ./internal/devpg/cmd/devpg
	@./cluster/run

## test: every test, against real Postgres and embedded NATS JetStream
test:
	$(GO) test -count=1 -p 2 -timeout 30m $(TEST_PKGS)

## test-cluster: auditd on a real 3-node NATS cluster: placement, replicas, failover of nodes and instances, partitions (about 5 minutes)
test-cluster:
	$(GO) test -count=1 -p 1 -timeout 25m $(CLUSTER_TEST_PKG)

# axe-core, the accessibility checker the browser tests run on each screen;
# installed by test-browser into a temporary directory, never committed.
AXE_CORE_VERSION ?= 4.14.1

## test-browser: drive the console in headless Chromium against a real auditd (needs chromium and npm)
test-browser:
	@axe="$$(mktemp -d)"; trap 'rm -rf "$$axe"' EXIT; \
	  npm install --silent --no-save --no-audit --no-fund --prefix "$$axe" axe-core@$(AXE_CORE_VERSION) >/dev/null && \
	  AXE_CORE_JS="$$axe/node_modules/axe-core/axe.min.js" $(GO) test -tags browser -count=1 -timeout 10m ./server/consoletest/

## test-syslog: log stream delivery over TLS to a real rsyslogd the tests start, from the sender, across receiver outages, end to end through auditd, across a NATS restart and an instance killed mid-batch (needs rsyslog and rsyslog-gnutls)
test-syslog:
	$(GO) test -tags rsyslog -count=1 -timeout 5m ./logstream/syslog/
	$(GO) test -tags rsyslog -count=1 -timeout 5m -run TestSyslog ./logstream/delivery/
	$(GO) test -tags rsyslog -count=1 -timeout 5m -run TestSyslog ./server/
	$(GO) test -tags rsyslog -count=1 -timeout 5m -run TestSyslog ./cluster/clustertest/

## generate: regenerate gqlgen code
generate:
	$(GO) generate ./...

## lint: vet, formatting, and a check that generated code is current
lint:
	$(GO) vet ./...
	$(GO) vet -tags browser,rsyslog ./server/... ./logstream/... ./cluster/...
	@test -z "$$(gofmt -l .)" || (gofmt -l .; echo "gofmt needed"; exit 1)

## bench: end-to-end figures at full size (1M events for queries); JSON to $$BENCH_OUT
bench:
	$(GO) run ./cmd/auditbench -scale 1

## bench-quick: the same at a tenth of the size
bench-quick:
	$(GO) run ./cmd/auditbench -scale 0.1

## bench-search: search latency alone, one org of 3M events among 50 orgs sharing 1M, at SCALE (default 0.1)
bench-search:
	$(GO) run ./cmd/auditbench -only search -scale $(or $(SCALE),0.1)

build:
	$(GO) build -o bin/auditd ./cmd/auditd

## pg-stop: stop the private Postgres cluster make run or make test may have started
pg-stop:
	@$(GO) run ./internal/devpg/cmd/devpg stop "$(AUDITD_DATA_DIR)/pg"
