"""Unit tests of the pure domain and configuration code."""
