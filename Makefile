# Two commands for a new user:  make run  (install, then a short training run)  and  make test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Debian packages for headless MuJoCo rendering (DMControl from pixels).
GL_PKGS := libosmesa6 libgl1-mesa-dri libegl-mesa0 libgl1
export MUJOCO_GL ?= egl

# make run: PSRL on MinAtar breakout, evaluated every 1,000 steps, then the returns it must beat.
RUN_ENV   ?= breakout
RUN_FLAGS ?= --env=$(RUN_ENV) --seed=0 --total_steps=4000 --eval_every=1000 --eval_episodes=50 --log_every=500 --workdir=runs/make_run

.PHONY: install gl test run clean
install: $(STAMP) gl

$(STAMP): requirements.txt setup.cfg pyproject.toml
	@echo "installing into $(VENV) (log: $(VENV)/install.log)"
	@$(PYTHON) -m venv $(VENV)
	@{ $(BIN)/pip install --upgrade pip && $(BIN)/pip install -r requirements.txt && \
	   $(BIN)/pip install --no-deps -e . ; } > $(VENV)/install.log 2>&1 || \
	  { tail -n 30 $(VENV)/install.log; echo "install failed: see $(VENV)/install.log" >&2; exit 1; }
	@touch $@

gl:
	@dpkg -s $(GL_PKGS) >/dev/null 2>&1 || { \
	  echo "installing $(GL_PKGS) for headless MuJoCo rendering"; \
	  apt-get install -y -q $(GL_PKGS) >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && apt-get install -y -q $(GL_PKGS) >/dev/null; } || \
	  { echo "could not install $(GL_PKGS): run as root or install them yourself" >&2; exit 1; }; }

test: install
	$(BIN)/python -m pytest -n auto --dist loadfile

run: install
	$(BIN)/python -m experiments.train_minatar $(RUN_FLAGS)
	@$(BIN)/python -m experiments.baselines --suite=minatar --env=$(RUN_ENV) --episodes=50

clean:
	rm -rf $(VENV) runs report .pytest_cache
