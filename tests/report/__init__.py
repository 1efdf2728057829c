"""Tests of the reconciliation report."""
