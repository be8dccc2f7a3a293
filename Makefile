# Two commands for a new user:  make run  (install, then a short training run)  and  make test.
# ACCEL=cuda12 (NVIDIA GPUs) or ACCEL=tpu (Cloud TPU VMs) adds requirements-$(ACCEL).txt: jax's
# plugins for that accelerator, in the same .venv; the default, cpu, removes them again.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ACCEL  ?= cpu
ACCELS := cuda12 tpu
ifeq ($(filter $(ACCEL),cpu $(ACCELS)),)
$(error ACCEL=$(ACCEL) is not one of: cpu $(ACCELS))
endif
STAMP  := $(VENV)/.installed-$(ACCEL)
REQUIREMENTS := -r requirements.txt $(if $(filter-out cpu,$(ACCEL)),-r requirements-$(ACCEL).txt)
# jax's plugins of each accelerator; those of the others are uninstalled (jax would load them).
PLUGINS_cuda12 := jax-cuda12-plugin jax-cuda12-pjrt
PLUGINS_tpu    := libtpu
UNUSED_PLUGINS := $(foreach a,$(filter-out $(ACCEL),$(ACCELS)),$(PLUGINS_$(a)))
# Debian packages for headless MuJoCo rendering (DMControl from pixels).
GL_PKGS := libosmesa6 libgl1-mesa-dri libegl-mesa0 libgl1
export MUJOCO_GL ?= egl

# make run: PSRL on MinAtar breakout, evaluated every 2,000 steps, then the returns it must beat.
RUN_ENV   ?= breakout
RUN_FLAGS ?= --env=$(RUN_ENV) --seed=0 --total_steps=10000 --eval_every=2000 --eval_episodes=50 --log_every=1000 --workdir=runs/make_run

.PHONY: install gl test run check-accel clean
install: $(STAMP) gl

$(STAMP): requirements.txt $(wildcard requirements-$(ACCEL).txt) setup.cfg pyproject.toml
	@echo "installing into $(VENV) for ACCEL=$(ACCEL) (log: $(VENV)/install.log)"
	@$(PYTHON) -m venv $(VENV)
	@rm -f $(VENV)/.installed $(VENV)/.installed-*
	@{ $(BIN)/pip install --upgrade pip && $(BIN)/pip install $(REQUIREMENTS) && \
	   $(BIN)/pip uninstall -y -q $(UNUSED_PLUGINS) && $(BIN)/pip install --no-deps -e . ; } \
	  > $(VENV)/install.log 2>&1 || \
	  { tail -n 30 $(VENV)/install.log; echo "install failed: see $(VENV)/install.log" >&2; exit 1; }
	@touch $@

gl:
	@dpkg -s $(GL_PKGS) >/dev/null 2>&1 || { \
	  echo "installing $(GL_PKGS) for headless MuJoCo rendering"; \
	  apt-get install -y -q $(GL_PKGS) >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && apt-get install -y -q $(GL_PKGS) >/dev/null; } || \
	  { echo "could not install $(GL_PKGS): run as root or install them yourself" >&2; exit 1; }; }

# pip's resolver on requirements.txt + requirements-<accel>.txt, nothing installed (needs PyPI).
check-accel: install
	$(BIN)/python tools/check_accel.py $(ACCELS)

test: install check-accel
	$(BIN)/python -m pytest -n auto --dist loadfile --no-loadscope-reorder

run: install
	$(BIN)/python -m experiments.train_minatar $(RUN_FLAGS)
	@$(BIN)/python -m experiments.baselines --suite=minatar --env=$(RUN_ENV) --episodes=50

clean:
	rm -rf $(VENV) runs report .pytest_cache
