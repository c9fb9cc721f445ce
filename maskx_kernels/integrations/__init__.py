"""maskx's kernels inside other libraries' detectors, one module per library
(``maskx_kernels.integrations.torchvision``)."""
