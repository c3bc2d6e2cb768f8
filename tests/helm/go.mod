// The pinned helm the chart is linted, rendered and installed with; built by tests/helm/build.
module wasmray.dev/tests/helm

go 1.26.0

require helm.sh/helm/v3 v3.22.0
