"""Load and latency scripts; each prints figures and ratios against a bare baseline from the same run."""
