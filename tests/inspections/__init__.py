"""Tests of the inspections domain."""
