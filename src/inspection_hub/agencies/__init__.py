"""Agencies (执法机关), their matter checklists (检查事项) and inspectors (执法检查人员)."""
