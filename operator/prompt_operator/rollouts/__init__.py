"""Progressive rollout of a Prompt change: the candidate served as a canary variant
beside the stable revision, by steps of weight, pauses and analysis."""
