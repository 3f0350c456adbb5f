"""The optional compiled part of rnnbridge; every other setting is in pyproject.toml.

``service.engine._transpose`` is a small C extension that writes transposed matrices bit
for bit at close to memory-copy speed. It is optional: where no C compiler is available
the install still succeeds and ``service.engine.layout`` copies with NumPy instead.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("service.engine._transpose", ["service/engine/_transpose.c"], optional=True)])
