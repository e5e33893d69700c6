"""Tests of the webhooks domain."""
