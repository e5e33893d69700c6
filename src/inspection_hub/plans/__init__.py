"""Annual plans (年度检查计划), plan items and the verifiable double-random draw (双随机)."""
