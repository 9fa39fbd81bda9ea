"""signcheck benchmarks: each module prints its figures; `python -m benchmarks` runs all."""
