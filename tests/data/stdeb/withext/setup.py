from setuptools import Extension, setup

setup(
    name="fastsum",
    version="0.3.0",
    package_dir={"": "src"},
    packages=["fastsum"],
    ext_modules=[Extension("fastsum._speedups", ["src/fastsum/_speedups.c"])],
)
