#!/usr/bin/env python
"""Write extra real-framework LSTM/GRU weight fixtures into ``tests/fixtures/``.

Each fixture is a folder of files written by a real framework (TF1 checkpoints, Keras 2
and Keras 3 HDF5 / ``.keras``, PyTorch ``.pt`` / ``.safetensors``, ONNX), an input, the
framework's own outputs for that input and the per-gate truth in the canonical form of
``/work/shared/fixtures`` (same ``manifest.json`` schema, ``format_version`` 1). The
fixtures cover variants the shared set lacks: reverse-only layers, hard-sigmoid and relu
activations, Keras 2 CuDNN layers, TF1 checkpoints with optimizer slots, old names,
partitioned variables and cuDNN-compatible names, ONNX ``clip`` / ``input_forget``, ...

How it works, per fixture: per-gate canonical weights are drawn (uniform(-0.5, 0.5),
seeded from the fixture id), placed into the framework's layer with the framework's own
API (``set_weights``, ``state_dict``, ``tf.compat.v1`` variables + ``Saver``, ONNX
initializers), the framework runs on a random normal input (batch 2, T 3-6) and its
outputs are recorded. A NumPy forward pass from the canonical arrays must reproduce those
outputs to <= 1e-5 (the self-check), and every ``weights[role].in_files`` location is read
back from the written file and compared with the stored array; a failure is a bug here.

Requirements (never needed by CI, which only reads the written files)::

    python -m venv /tmp/fxenv
    /tmp/fxenv/bin/pip install '.[fixtures]'      # or, pinned as used:
    /tmp/fxenv/bin/pip install tensorflow==2.21.0 tf_keras==2.21.0 keras==3.15.1 \
        onnx==1.23.2 onnxruntime==1.31.1 torch==2.13.0 safetensors numpy h5py

Usage::

    /tmp/fxenv/bin/python tools/make_fixtures.py            # all fixtures
    /tmp/fxenv/bin/python tools/make_fixtures.py ID [ID...] # some; manifest entries merged
    /tmp/fxenv/bin/python tools/make_fixtures.py --list

Each framework family runs in its own child process (Keras 2 and TF1 need
``TF_USE_LEGACY_KERAS=1``, Keras 3 must not have it). The generator is the package
``tools/fixtures``: ``common`` (canonical maths, the fixture writer, the self-check),
one module per framework (``keras``, ``tf1``, ``torch``, ``onnx``) and ``driver``. Output is deterministic (fixed
seeds) except ``m.keras`` zip timestamps and ``model.ckpt.meta`` serialisation order.
"""

import sys

from fixtures.driver import main  # tools/ is on sys.path: this file runs as a script

if __name__ == "__main__":
    sys.exit(main())
