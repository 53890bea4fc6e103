"""Training: the one epoch loop, the runtime (device, precision, memory format) and interrupts."""
