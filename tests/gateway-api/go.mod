// The Gateway API CRDs of the RayService tests (tests/gateway-api-dir downloads this module and
// prints its directory): v1.4.0, the release KubeRay v1.5.2 builds against.
module wasmray.dev/gateway-api-fixtures

go 1.24.0

require sigs.k8s.io/gateway-api v1.4.0
