# Two commands on a fresh machine (see README): `make train` and `make test`.
PYTHON ?= python3
export PYTHON

.PHONY: setup train test bench clean

setup:
	bash scripts/setup.sh

# The main job: train the default AAE on Fashion-MNIST (a few minutes on 2 CPU cores).
train: setup
	aae-fast train --out runs/default

test: setup
	bash scripts/test.sh

bench: setup
	aae-fast bench

clean:
	rm -rf build aae_fast/_C*.so *.egg-info
