"""`prompt-operator console`: a local web console for the people who write prompts.

It talks to the API server with the user's own kubeconfig credentials, so the
API server's RBAC decides what each person may see and change; the console
has no privileges and stores nothing. Modules:

- ``kubeconfig``: the user's credentials from a kubeconfig file;
- ``auth``: the one-time link, the signed session cookie, the derived CSRF token;
- ``api``: the few API calls the pages make (reads, dry run, apply, rollback),
  name checks, and the hub of shared watches behind the live views;
- ``views``: pure functions from API objects to what a page shows;
- ``worddiff``: the side-by-side, word-level comparison of two revisions;
- ``server``: the aiohttp application (routes, guards, SSE, security headers);
- ``command``: the flags, the printed link, the signals.
"""
