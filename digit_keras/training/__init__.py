"""Training: tf.distribute strategies, optimizers, callbacks, run directories and the fit loop."""
