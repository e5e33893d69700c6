"""Conflict detection: repeat, mergeable, cap, inspector and no-disturb rules."""
