# The two commands of the README. Both work on a fresh machine (Debian 12, root).
SHELL := /bin/bash
GO ?= go
GOTESTFLAGS ?= -timeout 30m

.PHONY: test test-go fuzz vet demo testenv-up testenv-down build manifests-version

# Whole test suite: environment up, vet + gofmt check + go test ./..., environment down; then
# every fuzz target for FUZZTIME (10 s each: 4.5 min on 2 shared cores with warm builds).
test:
	@scripts/testenv.sh up >/dev/null
	@rc=0; $(MAKE) --no-print-directory test-go || rc=$$?; scripts/testenv.sh down; exit $$rc
	@$(MAKE) --no-print-directory fuzz

test-go: vet
	$(GO) test $(GOTESTFLAGS) ./...

# Each fuzz target in turn for FUZZTIME (default 10s; FUZZTIME=10m for a long local run).
# A crasher is written to <package>/testdata/fuzz/<Target>/ and named; the run fails.
fuzz:
	FUZZTIME=$(or $(FUZZTIME),10s) scripts/fuzz.sh

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

# The binary as the sidecar image ships it: static, no cgo, no symbol table.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o bin/strata ./cmd/strata

# Main job end to end (build -> bundle -> updater -> real Argo CD syncs) on embedded defaults;
# ARGS=-keep leaves the Application in the cluster. The demo signs nothing: it does not build cosign.
demo:
	@STRATA_TESTENV_COSIGN=$${STRATA_TESTENV_COSIGN:-0} scripts/testenv.sh up >/dev/null
	$(GO) run ./internal/testing/demo/run $(ARGS)

testenv-up:
	scripts/testenv.sh up

testenv-down:
	scripts/testenv.sh down

# Release: pin the images of manifests/ to VERSION (make manifests-version VERSION=v1.2.3); the
# images ghcr.io/strata-dev/strata-sidecar and strata-image-updater are pushed with that tag.
manifests-version:
	@[[ "$(VERSION)" =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$$ ]] || { echo "VERSION=vX.Y.Z needed, got '$(VERSION)'"; exit 1; }
	sed -i -E '/name: ghcr.io\/strata-dev\/strata-(sidecar|image-updater)$$/{n;s/newTag: .*/newTag: $(VERSION)/}' \
	  manifests/argocd/kustomization.yaml manifests/image-updater/kustomization.yaml
