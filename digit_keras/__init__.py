"""digit-keras: honest, fast Keras 3 classifiers for Kaggle's Digit Recognizer."""

__version__ = "0.2.0"
