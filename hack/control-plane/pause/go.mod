// The node's pause binary: the process that holds each pod's namespaces.
module prompt-operator/hack/control-plane/pause

go 1.26.0
