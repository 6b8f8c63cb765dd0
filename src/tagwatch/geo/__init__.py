"""Projections and geometry helpers shared by the kernels."""
