//! Prints the three CRDs as JSON (`cargo run -p wasmray-api --features schema --example print_crds`).
fn main() {
    for crd in wasmray_api::crd::all() {
        println!(
            "{}",
            serde_json::to_string_pretty(&crd).expect("a CRD serialises")
        );
    }
}
