#!/usr/bin/env bash
# Installs everything aae_fast needs on a fresh machine (Python 3.11, root, no GPU) and builds the
# extension in place. Idempotent: a second run only checks. Used by `make train` and `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
pip_install() { "$PYTHON" -m pip install --quiet --disable-pip-version-check "$@"; }

have() { "$PYTHON" - "$1" "$2" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version(sys.argv[1]).split("+")[0] == sys.argv[2] else 1)
PY
}

# torch 2.13.0 (the CPU build on this machine's disk: never let a resolver pick a CUDA build) and
# triton 3.8.0, pinned and installed first so that nothing later upgrades them.
have torch 2.13.0 || pip_install torch==2.13.0
have triton 3.8.0 || pip_install triton==3.8.0
pip_install "setuptools>=64" wheel ninja pybind11

# Fashion-MNIST, the default data set, from Debian's package (nothing is downloaded at run time).
if [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian package dataset-fashion-mnist"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "setup: Fashion-MNIST missing; as root run: apt-get install dataset-fashion-mnist" >&2
  fi
fi

# The package, editable, with the C++ extension built against the torch installed above.
echo "setup: building aae_fast (C++ extension; a minute on 2 cores the first time)"
# The bench extra brings pythae, the peer of the benchmarks and of examples/pythae_accelerate.py.
pip_install --no-build-isolation -e ".[dev,bench]"
"$PYTHON" -c "import aae_fast as af; i = af.backend_info(); print('setup: aae_fast', i['version'], '| torch', i['torch'], '| triton', i['triton'], '| C++ ext', i['cpu_ext'], '| CUDA ext', i['cuda_ext'])"
