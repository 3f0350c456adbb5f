"""The parts of the build that pyproject.toml cannot say; every other setting is there.

One import package, ``rnnbridge``. The library lives in ``rnnbridge/``; the HTTP service
and its contract keep their top-level folders ``service/`` and ``schemas/`` in the
repository and install beneath it, as ``rnnbridge.service`` and ``rnnbridge.schemas``.

``rnnbridge.engine._transpose`` is a small C extension that writes transposed matrices bit
for bit at close to memory-copy speed. It is optional: where no C compiler is available
the install still succeeds and ``rnnbridge.engine.layout`` copies with NumPy instead.
"""

from setuptools import Extension, find_packages, setup

FOLDERS = {"rnnbridge": "rnnbridge", "rnnbridge.service": "service", "rnnbridge.schemas": "schemas"}


def packages() -> list[str]:
    """Every package below the three folders, named as installed."""
    found = []
    for name, folder in FOLDERS.items():
        found += [name] + [f"{name}.{sub}" for sub in find_packages(folder)]
    return sorted(set(found))


setup(
    packages=packages(),
    package_dir=FOLDERS,
    ext_modules=[Extension("rnnbridge.engine._transpose", ["rnnbridge/engine/_transpose.c"], optional=True)],
)
