"""jaxdiv: train populations of image models and measure how differently they err."""

from jaxdiv import xla_defaults

xla_defaults.apply()  # before anything starts a JAX backend; see xla_defaults.py
