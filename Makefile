# Dito — every task a person or CI runs. `make help` lists them; CI runs `make test`.

CARGO    ?= cargo
RUN_DIR  ?= run
# Demo upstream addresses for `make run`: HTTP (dito-echo) and WebSocket echo (ws-echo).
UPSTREAM    ?= 127.0.0.1:8080
WS_UPSTREAM ?= 127.0.0.1:8090
PROFILE  ?= release
# Where cargo puts its output (honours CARGO_TARGET_DIR like cargo does).
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
RELEASE    := $(TARGET_DIR)/release
SIGNER     := $(RELEASE)/plugin-signer

# Plugins (plugins/README.md): every plugins/<name>/Cargo.toml is a plugin crate; its cdylib
# is copied to plugins/<name>/<name>.so (the layout Dito loads) and signed with the dev key.
PLUGINS_DIR   ?= plugins
PLUGIN_NAMES  := $(notdir $(patsubst %/Cargo.toml,%,$(wildcard $(PLUGINS_DIR)/*/Cargo.toml)))
# The package name in a plugin's Cargo.toml (the first `name = "..."`, the [package] one).
crate_of = $(shell sed -n '/^name *= *"/{s/^name *= *"\([^"]*\)".*/\1/p;q;}' $(PLUGINS_DIR)/$(1)/Cargo.toml)
# Dev signing keys: generated once, never overwritten, never committed (.gitignore).
KEYS_DIR      ?= $(RUN_DIR)/keys
PRIVATE_KEY   ?= $(KEYS_DIR)/ed25519_private.key
PUBLIC_KEY    ?= $(KEYS_DIR)/ed25519_public.key

# Fuzzing (fuzz/README.md): cargo-fuzz is installed into fuzz/.tools (ignored by git) on first
# use; it needs nightly flags, which the stable toolchain accepts with RUSTC_BOOTSTRAP=1.
FUZZ_SECONDS  ?= 30
FUZZ_TARGETS  ?= $(notdir $(basename $(wildcard fuzz/fuzz_targets/*.rs)))
FUZZ_TOOLS    := fuzz/.tools
CARGO_FUZZ    := $(FUZZ_TOOLS)/bin/cargo-fuzz
CARGO_FUZZ_VERSION ?= 0.13.2
# Extra `cargo fuzz run` flags (e.g. --sanitizer none) and libFuzzer flags (e.g. -jobs=2).
FUZZ_FLAGS    ?=
FUZZ_ARGS     ?=

.DEFAULT_GOAL := help
.PHONY: help build build-plugins generate-keys sign-plugins run test test-unit test-blackbox lint fmt update-config clean bench bench-quick bench-reload bench-observe bench-ws fuzz fuzz-tools

help: ## List the tasks
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

build: ## Build every binary of the workspace (release)
	$(CARGO) build --workspace --release

build-plugins: ## Build every plugins/<name>/ crate (release cdylib) into plugins/<name>/<name>.so
	$(if $(PLUGIN_NAMES),$(CARGO) build --release $(foreach n,$(PLUGIN_NAMES),-p $(call crate_of,$(n))),@echo "no plugin crates under $(PLUGINS_DIR)/")
	@set -e; $(foreach n,$(PLUGIN_NAMES),cp $(RELEASE)/lib$(subst -,_,$(call crate_of,$(n))).so $(PLUGINS_DIR)/$(n)/$(n).so; echo "built $(PLUGINS_DIR)/$(n)/$(n).so";)

generate-keys: build ## Dev signing keys in $(RUN_DIR)/keys/ (kept when present; ignored by git)
	@mkdir -p $(KEYS_DIR)
	@if [ -f $(PRIVATE_KEY) ] && [ -f $(PUBLIC_KEY) ]; then \
		echo "keeping the dev keys in $(KEYS_DIR)/"; \
	else \
		$(SIGNER) generate-keys --private-key $(PRIVATE_KEY) --public-key $(PUBLIC_KEY); \
	fi

sign-plugins: build-plugins generate-keys ## Sign every built plugin with the dev key: plugins/<name>/<name>.so.sig
	@set -e; $(foreach n,$(PLUGIN_NAMES),$(SIGNER) sign $(PLUGINS_DIR)/$(n)/$(n).so --private-key $(PRIVATE_KEY);)

update-config: generate-keys ## Render configs/dito.yaml into $(RUN_DIR)/dito.yaml (upstream, plugins, key path and hash)
	@mkdir -p $(RUN_DIR)
	@hash=$$($(SIGNER) hash $(PUBLIC_KEY)) && \
	sed -e 's|{{UPSTREAM}}|$(UPSTREAM)|g' \
	    -e 's|{{WS_UPSTREAM}}|$(WS_UPSTREAM)|g' \
	    -e 's|{{PLUGINS_DIR}}|$(abspath $(PLUGINS_DIR))|g' \
	    -e 's|{{PUBLIC_KEY_PATH}}|$(abspath $(PUBLIC_KEY))|g' \
	    -e "s|{{PUBLIC_KEY_HASH}}|$$hash|g" \
	    configs/dito.yaml > $(RUN_DIR)/dito.yaml.tmp && \
	mv $(RUN_DIR)/dito.yaml.tmp $(RUN_DIR)/dito.yaml && \
	echo "rendered $(RUN_DIR)/dito.yaml (upstream $(UPSTREAM), plugins in $(PLUGINS_DIR)/, public_key_hash $$hash)"

run: build build-plugins generate-keys sign-plugins update-config ## Build, sign the plugins, start the demo upstream, and run Dito in the foreground
	@$(RELEASE)/dito check -f $(RUN_DIR)/dito.yaml
	@set -e; \
	$(RELEASE)/dito-echo --listen $(UPSTREAM) & echo_pid=$$!; \
	$(RELEASE)/ws-echo --listen $(WS_UPSTREAM) & ws_pid=$$!; \
	trap 'kill $$echo_pid $$ws_pid 2>/dev/null' EXIT INT TERM; \
	$(RELEASE)/dito -f $(RUN_DIR)/dito.yaml

test: lint ## Lint, then every test under both io drivers (what CI runs)
	$(CARGO) build --workspace
	DITO_TEST_IO_DRIVER=uring $(CARGO) test --workspace
	DITO_TEST_IO_DRIVER=epoll $(CARGO) test --workspace --tests

fuzz: fuzz-tools ## Run every fuzz target for FUZZ_SECONDS each (default 30; FUZZ_TARGETS picks)
	@failed=; for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/corpus/$$t; \
		dict=; if [ -e fuzz/dicts/$$t.dict ]; then dict=-dict=$(abspath fuzz/dicts)/$$t.dict; fi; \
		echo "== fuzz $$t for $(FUZZ_SECONDS)s"; \
		RUSTC_BOOTSTRAP=1 PATH="$(abspath $(FUZZ_TOOLS)/bin):$$PATH" \
			$(CARGO) fuzz run --fuzz-dir fuzz $(FUZZ_FLAGS) $$t \
			$(abspath fuzz/corpus)/$$t $(abspath fuzz/seeds)/$$t \
			-- -max_total_time=$(FUZZ_SECONDS) $$dict $(FUZZ_ARGS) || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz targets with findings:$$failed (fuzz/artifacts/)"; exit 1; fi

fuzz-tools: $(CARGO_FUZZ) ## Install cargo-fuzz into fuzz/.tools (once)

$(CARGO_FUZZ):
	$(CARGO) install cargo-fuzz --locked --version $(CARGO_FUZZ_VERSION) --root $(FUZZ_TOOLS)

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

bench-ws: ## WebSocket echo: messages/s (one in flight per connection) and memory per idle tunnel, Dito vs nginx vs HAProxy
	$(CARGO) build --release --workspace
	bash bench/setup.sh
	BENCH_COMMAND="make bench-ws" python3 bench/run.py --ws

clean: ## Remove build output, built plugins and signatures, and $(RUN_DIR) (run config, dev keys)
	$(CARGO) clean
	rm -f $(PLUGINS_DIR)/*/*.so $(PLUGINS_DIR)/*/*.so.sig
	rm -rf $(RUN_DIR)
