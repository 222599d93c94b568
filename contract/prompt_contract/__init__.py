"""The contract between prompt-operator's operator, its sidecar and apps.

Dependency-free (the standard library only) and imported by all three, so each
name, rule and limit is defined once:

- ``objects``: the Prompt resource, the revision ConfigMaps, the pod labels and
  annotations that subscribe a pod;
- ``signals``: the operator-to-sidecar signal and its answer;
- ``selector``: the label-selector grammar both sides match Prompts with;
- ``files``, ``keys``, ``payload``: the prompt directory's layout and metadata,
  which keys may name a file, and what a revision ConfigMap puts on disk;
- ``templates``, ``variants``: how a text is rendered and which A/B variant a
  pod or user gets;
- ``timing``: the shared clock format and retry backoff;
- ``flags``: each command's flags and environment variables, declared once
  (the chart and the processes agree on them; the sidecar cannot import the
  operator's code, so the builder lives here);
- ``hops``: the optional hop trace (off unless a process is started with a
  trace file).

Nothing is imported here: an app that reads files loads only what it uses.
"""

__version__ = "0.1.0"
