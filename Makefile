# The two commands of the README: `make run` and `make test`. Everything else is a helper.
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never
BIN_DIR := $(or $(CARGO_TARGET_DIR),target)

.PHONY: run demo test test-web screenshots deps lint check-deploy fmt bench cluster cluster-smoke chaos chaos-light

## make run: install what is missing, build, and run the service on the embedded defaults.
run: deps
	$(CARGO) build --release -p vidsnap
	"$(BIN_DIR)/release/vidsnap" serve --listen 127.0.0.1:8080 --data-dir data

## make demo: the command line on a generated clip (frames every 10 s).
demo: deps
	$(CARGO) build --release -p vidsnap
	scripts/demo.sh "$(BIN_DIR)/release/vidsnap"

## make test: formatting, lints (warnings are errors), the deployment files, then every test,
## the web UI's browser tests (headless Chromium, ~40 s), then `make cluster`'s walk-through and
## the light chaos suite on the binary the tests ran.
test: deps lint check-deploy
	scripts/test-services.sh
	$(CARGO) test --workspace --all-targets
	scripts/test-web.sh "$(BIN_DIR)/debug/vidsnap"
	$(MAKE) --no-print-directory cluster-smoke CLUSTER_BIN="$(BIN_DIR)/debug/vidsnap"
	VIDSNAP_BIN="$(BIN_DIR)/debug/vidsnap" chaos/run --light

## make cluster [QUEUE=rabbitmq]: the scaled-out mode on loopback: PostgreSQL, S3 + SQS with
## bucket notifications on moto (QUEUE=rabbitmq: SeaweedFS + RabbitMQ), one API, two workers and
## a scheduler of the release binary. Prints the URLs, credentials and a walk-through; Ctrl-C stops it.
QUEUE ?= sqs
cluster: deps
	scripts/cluster.sh --queue "$(QUEUE)"

## make cluster-smoke: that walk-through run and checked on both queues, each bounded (the
## script stops itself after 300 s); CLUSTER_BIN=PATH runs that binary instead of a dev build.
cluster-smoke:
	$(if $(CLUSTER_BIN),,$(CARGO) build -p vidsnap)
	scripts/test-services.sh >/dev/null
	for queue in sqs rabbitmq; do \
	  timeout --kill-after=30 360 scripts/cluster.sh --smoke --queue $$queue \
	    --bin "$(or $(CLUSTER_BIN),$(BIN_DIR)/debug/vidsnap)" || exit 1; \
	done

## make test-web: only the web UI's browser tests, on a fresh debug build.
test-web: deps
	$(CARGO) build -p vidsnap
	scripts/test-web.sh "$(BIN_DIR)/debug/vidsnap"

## make screenshots: docs/screenshots/*.png of the web UI's main pages, regenerated.
screenshots: deps
	$(CARGO) build -p vidsnap
	scripts/screenshots.sh "$(BIN_DIR)/debug/vidsnap"

deps:
	scripts/install-deps.sh

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## make check-deploy: the Dockerfile, Kubernetes manifests and deployment docs, offline (seconds).
check-deploy:
	scripts/check-deploy.sh

fmt:
	$(CARGO) fmt --all

## make bench: every benchmark (bench/frames generates 10-minute 1080p clips once: slow on 2 cores).
bench: deps
	scripts/test-services.sh
	bench/frames
	bench/service
	bench/queue
	bench/uploads
	bench/qc
	bench/package
	bench/merge
	bench/scenes

## make chaos: the chaos suite of #11 (chaos/run, ~2.5 min): jobs through SIGKILLs, storage and
## database outages and failing ffprobe runs, then every invariant checked; prints the figures.
chaos: deps
	scripts/test-services.sh
	chaos/run

## make chaos-light: the same, shorter (~45 s); `make test` runs it.
chaos-light: deps
	scripts/test-services.sh
	chaos/run --light
