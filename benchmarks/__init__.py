"""Side-by-side timing and memory comparisons (``make bench``); never part of the test suite."""
