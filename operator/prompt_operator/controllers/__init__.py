"""Controllers that each do one job, on the runtime in ``..runtime``.

- ``keyclaims``: which Prompt serves which key in a namespace;
- ``revisions``: a pure plan of the revision ConfigMaps to create, relabel and
  prune, then its application;
- ``status_writer``: writes status (built by the pure ``..status``) only when it
  changed, remembering its own writes;
- ``subscribers``: the subscribed pods and which Prompts each selects;
- ``signals``: batched, bounded signals to sidecars and what they answer;
- ``accounting``: delivery counts, taken per revision and refreshed at a
  bounded rate.

``..reconcile`` ties them into parse, evaluate, plan, apply, status.
"""
