//! Field-by-field comparison with the goldens KubeRay's own builders produced (filled in below).
