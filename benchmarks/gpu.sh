#!/usr/bin/env bash
# The GPU checks and figures of kdcg on a machine whose PyTorch sees CUDA: the GPU tests
# (tests/gpu/test_gpu.py), then the benchmarks that print GPU figures. Each step has its own time
# limit and log, so one that fails does not hide the others.
#
#   bash benchmarks/gpu.sh [output folder]      (PYTHON=... to name another interpreter)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-results/benchmarks/gpu}
py=${PYTHON:-.venv/bin/python}
mkdir -p "$out"
export PYTHONUNBUFFERED=1

step() { # name, seconds, command...
    local name=$1 limit=$2
    shift 2
    echo "=== $name ($(date -u +%H:%M:%S), limit ${limit} s)"
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    echo "=== $name: exit $? after ${SECONDS} s in all"
    tail -n 25 "$out/$name.log"
}

"$py" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name(0))"
step tests 240 "$py" -m pytest -x -q -m gpu tests/gpu/test_gpu.py -p no:cacheprovider
step network_cost 90 "$py" benchmarks/network_cost.py --beads 1000 --repeats 10
step md 150 "$py" benchmarks/md.py --config config/paper.yaml --members 8 --steps 40 --repeats 20 --rounds 1
step training_pairs 120 "$py" benchmarks/training_pairs.py --config config/paper.yaml --frames 40 --beads 1000
step engine 240 "$py" benchmarks/engine.py --rounds 2 --repeats 10
step replicas 200 "$py" benchmarks/replicas.py --config config/paper.yaml --replicas 8 --beads 1000 --timestep-fs 1 --ps 0.2 --threads 4
