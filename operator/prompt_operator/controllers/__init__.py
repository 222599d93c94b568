"""Controllers that each own one concern, on the runtime in ``..runtime``.

- ``prompts``: the Prompt controller. Intake of watch events (with key
  claims, ``keyclaims``) and ``reconcile``: one edit's whole flow, returning
  when to look again (the next schedule entry);
- ``desired``: what a Prompt asks for at a moment, parsed, rendered and judged
  once, and the pure check that the cluster already has it;
- ``revisions``: a pure plan of the revision ConfigMaps to create, relabel and
  prune, then its application;
- ``delivery``: signals the subscribed pods (through ``signals``, to the pods
  ``subscribers`` knows) and counts who serves a revision; its own queue
  refreshes a count at a bounded rate (``refresh``);
- ``readiness``: the status (conditions, printer fields, built by the pure
  ``..status``), written only when it changed, and the Events.
"""
