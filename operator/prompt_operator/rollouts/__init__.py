"""Progressive rollouts: a Prompt change served to a share of pods or users, promoted or aborted on analysis."""  # noqa: E501
