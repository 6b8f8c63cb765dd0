"""Synthetic cohorts and device feeds: see docs/simulator.md."""
