"""Writes the hand-built HDF5 files of tests/formats/data/keras/ (h5py + NumPy only)."""

import h5py
import numpy as np

rng = np.random.default_rng(20240601)


def fingerprint(shape, base):
    """Values that encode their own position: base + flat index / 1000."""
    return (base + np.arange(np.prod(shape)) / 1000).reshape(shape).astype(np.float32)


# Keras 2 save_weights layout with both attributes split the way tf_keras splits
# attributes over HDF5_OBJECT_HEADER_LIMIT (layer_names0/1, weight_names0/1), names
# stored as fixed-length bytes, gzip+shuffle+fletcher32 datasets, a big-endian
# dataset, a soft link and a string dataset.
with h5py.File("split_names.h5", "w", libver="earliest") as f:
    f.attrs["keras_version"] = b"2.3.1"
    f.attrs["backend"] = b"tensorflow"
    f.attrs["layer_names0"] = np.array([b"input_1"])
    f.attrs["layer_names1"] = np.array([b"lstm_1", b"dense_1"])
    f.create_group("input_1").attrs["weight_names"] = np.array([], dtype="S1")
    g = f.create_group("lstm_1")
    g.attrs["weight_names0"] = np.array([b"lstm_1/kernel:0", b"lstm_1/recurrent_kernel:0"])
    g.attrs["weight_names1"] = np.array([b"lstm_1/bias:0"])
    opts = dict(compression="gzip", shuffle=True, fletcher32=True, chunks=True)
    g.create_dataset("lstm_1/kernel:0", data=fingerprint((3, 16), 1), **opts)
    g.create_dataset("lstm_1/recurrent_kernel:0", data=fingerprint((4, 16), 2), **opts)
    g.create_dataset("lstm_1/bias:0", data=fingerprint((16,), 3).astype(">f4"))
    d = f.create_group("dense_1")
    d.attrs["weight_names"] = np.array([b"dense_1/kernel:0", b"dense_1/bias:0"])
    d.create_dataset("dense_1/kernel:0", data=fingerprint((4, 2), 4).astype(np.float64))
    # the bias is reached through a soft link, as a writer that deduplicates might do
    d.create_dataset("shared/bias", data=fingerprint((2,), 5).astype(np.float16))
    d["dense_1/bias:0"] = h5py.SoftLink("/dense_1/shared/bias")
    f.create_dataset("notes", data=np.array([b"not an array of numbers"]))

# Keras 3 .weights.h5 layout whose LSTM variables are bfloat16: Keras 3 writes them
# with h5py as 2-byte opaque values (ml_dtypes' bfloat16 has numpy kind 'V') tagged by
# a dataset attribute dtype='bfloat16' (saving_lib.H5Entry.__setitem__).
with h5py.File("bfloat16.weights.h5", "w") as f:
    f.create_group("vars").attrs["name"] = "sequential"
    f.create_group("layers/lstm/vars").attrs["name"] = "my_lstm"
    cell = f.create_group("layers/lstm/cell/vars")
    cell.attrs["name"] = "lstm_cell"
    for i, shape in enumerate([(3, 8), (2, 8), (8,)]):
        f32 = fingerprint(shape, i + 1)
        bits = (f32.view(np.uint32) >> 16).astype("<u2")  # truncation: exact bfloat16 values
        ds = cell.create_dataset(str(i), data=bits.view("V2"))
        ds.attrs["dtype"] = "bfloat16"
