"""The stages of the chain, one module each: its config (a profile section) and its runner.

:mod:`pipeline.stages.graph` declares the chain once; Luigi tasks, farm adapters, rerun and
status derive from it.
"""
