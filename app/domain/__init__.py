"""The TensorFlow-free domain: what a study is made of, and the theory behind it.

No I/O and no deep-learning backend: the API validates studies and draws theory from
here, and the worker turns the same entries into Keras objects. ``import app.domain``
never loads TensorFlow or Keras.
"""
