"""prompt-operator."""
