//! Test guest: a reconciler that answers every snapshot with an Event naming its version (v2).

use wasmray_guest_sdk::{EventType, Plan, PluginError, Reconciler, Snapshot};

struct Echo;

impl Reconciler for Echo {
    fn reconcile(snapshot: Snapshot) -> Result<Plan, PluginError> {
        Ok(Plan::new().event(EventType::Normal, "Echo", "v2").requeue_after_ms(snapshot.seed))
    }
}

wasmray_guest_sdk::export_reconciler!(Echo);
