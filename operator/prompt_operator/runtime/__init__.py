"""The operator's controller runtime, apart from its business logic.

The pieces client-go and controller-runtime give a Go operator, small and
ours: an API client whose errors are its own types (``client``, ``errors``),
informers with a keyed cache (``informer``), a coalescing rate-limited work
queue (``workqueue``), leader election on a Lease (``leader``) and one
backoff formula (``backoff``). Nothing here knows what a Prompt is.
"""
