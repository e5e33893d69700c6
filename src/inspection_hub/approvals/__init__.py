"""Unplanned checks: requests, head approval (机关负责人审批), deadlines and emergencies."""
