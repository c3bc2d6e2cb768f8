//! Test guest: a reconciler that misbehaves in the way the snapshot's `primary` names.
//!
//! `loop` spins forever, `oom` allocates until memory runs out, `panic` panics, `malformed-*`
//! return plans the host must refuse, `error` returns a plugin error, `probe` reports what
//! of the host it can see (files, environment, clock, randomness), and anything else
//! succeeds with an empty plan.

use wasmray_guest_sdk::{
    Condition, ConditionStatus, EventType, ObjectRef, Plan, PluginError, Reconciler, Snapshot,
    StatusUpdate,
};

struct Hostile;

impl Reconciler for Hostile {
    fn reconcile(snapshot: Snapshot) -> Result<Plan, PluginError> {
        match snapshot.primary.as_str() {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "oom" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
                }
            }
            "panic" => panic!("hostile guest panics on purpose"),
            "malformed-json" => Ok(Plan::new().apply("{not json".into())),
            "malformed-object" => Ok(Plan::new().apply(r#"{"apiVersion":"v1","metadata":{"name":"x"}}"#.into())),
            "malformed-delete" => Ok(Plan::new().delete(ObjectRef::namespaced("v1", "Pod", "ns", ""))),
            "malformed-status" => Ok(Plan::new().status(StatusUpdate {
                conditions: vec![Condition::new("Ready", ConditionStatus::True, "Ok", "")],
                fields: Some("[1, 2]".into()),
            })),
            "probe" => Ok(Plan::new().event(EventType::Normal, "Probe", &probe())),
            "error" => Err(PluginError::InvalidSpec("hostile guest rejects the spec".into())),
            _ => Ok(Plan::new().event(EventType::Normal, "Fine", "nothing to do")),
        }
    }
}

/// What the sandbox lets through, as one line.
fn probe() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    let root = std::fs::read_dir("/").map(|d| d.count()).map_err(|e| e.kind());
    let file = std::fs::read("/etc/hostname").is_ok();
    let env = std::env::vars().count();
    let args = std::env::args().count();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    // HashMap's random state comes from WASI randomness.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(1);
    println!("hostile guest writes to stdout");
    format!("root={root:?} file={file} env={env} args={args} now={now} hash={}", hasher.finish())
}

wasmray_guest_sdk::export_reconciler!(Hostile);
