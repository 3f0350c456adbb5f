"""Write the partitioned, two-shard TF1 checkpoint of tests/formats/data/tf_partitioned/."""
import sys

import numpy as np
import tensorflow as tf

out = sys.argv[1]
tf.compat.v1.disable_eager_execution()
rng = np.random.default_rng(0)
expected = {
    "rnn/lstm_cell/kernel": rng.uniform(-0.5, 0.5, (130, 8)).astype(np.float32),
    "rnn/lstm_cell/bias": np.arange(8, dtype=np.float32),
    "extra/half": np.linspace(-1, 1, 5).astype(np.float16),
    "extra/i64": np.array([[1, -2], [3, 2**40]], np.int64),
    "extra/bf16": np.array([1.0, -2.5, 3.0], np.float32),
}
graph = tf.Graph()
with graph.as_default():
    with tf.device("/cpu:0"):
        tf.compat.v1.get_variable(
            "rnn/lstm_cell/kernel", initializer=tf.constant(expected["rnn/lstm_cell/kernel"]),
            partitioner=tf.compat.v1.fixed_size_partitioner(3, axis=0))
        tf.compat.v1.get_variable(
            "rnn/lstm_cell/bias", initializer=tf.constant(expected["rnn/lstm_cell/bias"]),
            partitioner=tf.compat.v1.fixed_size_partitioner(2, axis=0))
        tf.compat.v1.get_variable("extra/words", initializer=tf.constant([b"a", b"bc"]))
    with tf.device("/cpu:1"):
        tf.compat.v1.get_variable("extra/half", initializer=tf.constant(expected["extra/half"]))
        tf.compat.v1.get_variable("extra/i64", initializer=tf.constant(expected["extra/i64"]))
        tf.compat.v1.get_variable(
            "extra/bf16", initializer=tf.constant(expected["extra/bf16"], dtype=tf.bfloat16))
    saver = tf.compat.v1.train.Saver(sharded=True)
    config = tf.compat.v1.ConfigProto(device_count={"CPU": 2})
    with tf.compat.v1.Session(config=config) as session:
        session.run(tf.compat.v1.global_variables_initializer())
        saver.save(session, f"{out}/model.ckpt", write_meta_graph=False)
np.savez(f"{out}/expected.npz", **expected)
reader = tf.compat.v1.train.NewCheckpointReader(f"{out}/model.ckpt")
print(reader.get_variable_to_dtype_map())
