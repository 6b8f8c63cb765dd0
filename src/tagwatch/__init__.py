"""tagwatch: an open electronic monitoring platform."""

__version__ = "0.1.0"
