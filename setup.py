"""Shim so Beam's ``--setup_file=./setup.py`` can build the worker package; metadata is in pyproject.toml."""

from setuptools import setup

setup()
