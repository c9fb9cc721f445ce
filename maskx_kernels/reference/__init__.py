"""Plain-PyTorch implementations of every maskx op: the test oracle and a readable spec."""
