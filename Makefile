# Dito — every task a person or CI runs. `make help` lists them; CI runs `make test`.

CARGO    ?= cargo
RUN_DIR  ?= run
# Demo upstream address for `make run`.
UPSTREAM ?= 127.0.0.1:8080
PROFILE  ?= release

.DEFAULT_GOAL := help
.PHONY: help build run test test-unit test-blackbox lint fmt update-config clean bench bench-quick bench-reload bench-observe

help: ## List the tasks
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

build: ## Build every binary of the workspace (release)
	$(CARGO) build --workspace --release

update-config: ## Render configs/dito.yaml into $(RUN_DIR)/dito.yaml (untracked)
	@mkdir -p $(RUN_DIR)
	@sed -e 's|{{UPSTREAM}}|$(UPSTREAM)|g' configs/dito.yaml > $(RUN_DIR)/dito.yaml
	@echo "rendered $(RUN_DIR)/dito.yaml (upstream $(UPSTREAM))"

run: build update-config ## Build, start the demo upstream, and run Dito in the foreground
	@./target/release/dito check -f $(RUN_DIR)/dito.yaml
	@set -e; \
	./target/release/dito-echo --listen $(UPSTREAM) & echo_pid=$$!; \
	trap 'kill $$echo_pid 2>/dev/null' EXIT INT TERM; \
	./target/release/dito -f $(RUN_DIR)/dito.yaml

test: lint ## Lint, then every test under both io drivers (what CI runs)
	$(CARGO) build --workspace
	DITO_TEST_IO_DRIVER=uring $(CARGO) test --workspace
	DITO_TEST_IO_DRIVER=epoll $(CARGO) test -p dito --tests

lint: ## rustfmt check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the workspace
	$(CARGO) fmt --all

bench: ## Benchmark Dito vs nginx vs HAProxy, all seven scenarios (bench/README.md; LAYOUT=pinned etc.)
	$(CARGO) build --release --workspace
	bash bench/setup.sh
	BENCH_COMMAND="make bench" python3 bench/run.py

bench-quick: ## Quick benchmark: ka-small, ka-16k, ka-small-tls-up, ka-small-tls, 2 rounds, a few minutes
	$(CARGO) build --release --workspace
	bash bench/setup.sh
	BENCH_COMMAND="make bench-quick" python3 bench/run.py --quick

bench-reload: ## Reload under load: failed requests while Dito, nginx, HAProxy reload every second
	$(CARGO) build --release --workspace
	bash bench/setup.sh
	BENCH_COMMAND="make bench-reload" python3 bench/run.py --reload

bench-observe: ## What metrics + access lines cost on ka-small: 10 paired rounds, Dito with vs without
	$(CARGO) build --release --workspace
	bash bench/setup.sh
	BENCH_COMMAND="make bench-observe" python3 bench/run.py --observe-cost

clean: ## Remove build output and the rendered run config
	$(CARGO) clean
	rm -rf $(RUN_DIR)
