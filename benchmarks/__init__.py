"""pytest-benchmark suites comparing maskx with torchvision (and other baselines) in one run."""
