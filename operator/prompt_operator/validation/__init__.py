"""`prompt-operator validate` in parts: ``reading`` (YAML with line numbers) and
``checks`` (schema, API server rules, template checks); the command is ``..validate``."""
