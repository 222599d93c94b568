"""`prompt-operator console`: a local web console for the people who write prompts.

It talks to the API server with the user's own kubeconfig credentials, so the
API server's RBAC decides what each person may see and change; the console
has no privileges and stores nothing. A request goes guard, page, service,
presenter, template:

- ``security``: the Host check, the session, CSRF, security headers, the access
  log (``auth``: the one-time link, the signed cookie, the derived CSRF token;
  ``hosts``: the names the console answers to);
- ``server``: the routes; ``pages`` and ``edit``: the handlers, which parse a
  request, call the service once and render (``rendering``); ``stream``: the
  list's live view (server-sent events);
- ``service``: every cluster operation, over ``prompt_api`` and the one client
  (``runtime.client.KubeApi``); ``watch``: the shared watches behind the live
  views; ``compare`` and ``worddiff``: revisions compared within a budget;
- ``views``, ``edit_form``, ``usage``: pure functions from API objects to what a
  page shows;
- ``command``: the flags, the printed link, the signals.
"""
