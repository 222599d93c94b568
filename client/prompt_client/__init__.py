"""App-side reader for prompts delivered by prompt-operator."""
