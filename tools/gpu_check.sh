#!/usr/bin/env bash
# The checks a session lent a GPU runs, as one command inside the device's 10-minute limit: the
# learner-step benchmark (issue 7: psrl/spr/rainbow update times, XLA's cost of every preset's
# update) and then one Atari training run for the time left (speed on that device; issue 16: whether
# the psrl preset's target maps hold their scale, by `z_scale` and the L1 terms in metrics.csv).
#
# Here, once: ../shared/device/pack.sh atari (envpool, haiku, ml_collections, gymnasium: .devpkgs/).
# Then the device call, with carry [".devpkgs"] and timeout_s 600:
#   python3 -m zipfile -e .devpkgs/site.zip .devpkgs/site && export PYTHONPATH=$PWD/.devpkgs/site:$PWD
#   MUJOCO_GL=egl XLA_PYTHON_CLIENT_MEM_FRACTION=.7; bash tools/gpu_check.sh
# Settings (environment): BUDGET_S, seconds for the whole script (default 540); BENCH_S, at most this
# many of them for the benchmark (default 240; 0 skips it); PRESET (psrl), GAME (Breakout), SEEDS (1)
# and FLAGS (more launcher flags, e.g. SPR's online target for psrl:
# FLAGS=--config.agent.target_update_tau=1.0) of the training run, which gets what is left less 80 s.
# Writes to $OUT (at most 8 files come back): benchmark.json and benchmark.log, train.log, and the
# run's config.json, metrics.csv, eval.csv and, if it finished, summary.json. Save them under
# results/ with the device and commit.
set -uo pipefail
out=${OUT:?set OUT to the folder the results go to}
python=${PYTHON:-python3}
budget=${BUDGET_S:-540}
bench=${BENCH_S:-240}
start=$SECONDS
mkdir -p "$out"
if [ "$bench" -gt 0 ]; then
  timeout --signal=TERM "$bench" "$python" -m experiments.benchmark --quick --dmc_presets= \
    --minatar_presets=none --out "$out/bench" > "$out/benchmark.log" 2>&1
  echo "benchmark: exit $? after $((SECONDS - start)) s"
  find "$out/bench" -name '*.json' -exec cp {} "$out/benchmark.json" \; 2>/dev/null
  rm -rf "$out/bench"
fi
left=$((budget - (SECONDS - start) - 80))
if [ "$left" -lt 60 ]; then
  echo "error: ${left} s left for training (BUDGET_S=$budget, BENCH_S=$bench)" >&2
  exit 1
fi
workdir=$(mktemp -d)/run
# SIGTERM: the launcher ends its step (a first learn step compiles for a minute or more), writes a
# checkpoint and its files and exits (training.train's handler); KILL 60 s later.
timeout --signal=TERM --kill-after=60 "$left" "$python" -m experiments.train_atari \
  --config="experiments/configs/atari.py:${PRESET:-psrl}" --env="${GAME:-Breakout}" \
  --num_seeds="${SEEDS:-1}" --workdir="$workdir" --total_steps=100000 --eval_every=20000 \
  --eval_episodes=10 --log_every=500 --checkpoint_every=100000 ${FLAGS:-} > "$out/train.log" 2>&1
echo "train: exit $? after $((SECONDS - start)) s"
for name in config.json metrics.csv eval.csv summary.json; do
  file=$(find "$workdir" -name "$name" -not -path '*/checkpoints/*' | sort | head -n 1)
  [ -n "$file" ] && cp "$file" "$out/$name"
done
tail -n 3 "$out/train.log"
