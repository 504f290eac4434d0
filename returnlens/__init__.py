"""The ``returnlens`` command's composition root: the one place that knows every area.

``vision`` is the torch-free core; ``training`` (torch) and ``serving`` (no torch) build
on it and never import each other. Only this package sees all three, so it can offer
one console script without making serving depend on training.
"""
