//! Which Events reach the API server, and as which Event object: client-go's correlator, which
//! KubeRay's recorder applies to every Event, and one kube-rs recorder per resulting series.
//!
//! KubeRay records a `CreatedWorkerPod` Event per worker, but its users never see a hundred of
//! them for a hundred-worker cluster: client-go combines similar Events about one object once
//! ten differ only in their message, and lets each object's Events through 25 at once, then one
//! every five minutes. Recording every one would double the API server's writes during a
//! scale-up (one Event per Pod created) for Events nobody reads; this applies the same two rules,
//! so the Events of a wasmray-run cluster read as they do under KubeRay, and counts what it
//! holds back (`wasmray_events_skipped`) where client-go drops it silently.
//!
//! One difference, on purpose: the budget of 25 is per object *and reason*, where client-go's
//! is per object. Under client-go a RayService whose upgrade steps spent its 25 loses the
//! `UpgradeRolledBack` Event that says why traffic went back; here a flood of one reason spends
//! only its own budget, and an Event of another reason still gets through.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event as KubeEvent, Recorder, Reporter};

/// Events of one reason about one object sent at once before the rest wait for a token
/// (client-go's 25, which it counts per object).
const REASON_BURST: NonZeroU32 = NonZeroU32::new(25).expect("non-zero");

/// One more Event of a reason about an object per this spell, once its burst is spent
/// (client-go's 1/300 s).
const REASON_REFILL: Duration = Duration::from_secs(300);

/// Distinct notes of similar Events kept apart; from the next distinct one on they are combined.
const DISTINCT_NOTES: usize = 9;

/// How long similar Events are remembered after the last of them (client-go's ten minutes).
const SIMILAR_WINDOW: Duration = Duration::from_secs(600);

/// The most groups of similar Events remembered: past this the idle ones go, then the oldest.
const SIMILAR_KEPT: usize = 1024;

/// The most (object, reason) budgets remembered before those with a full budget go.
const BUDGETS_KEPT: usize = 4096;

/// The prefix of a combined Event's note, as client-go writes it.
pub const COMBINED: &str = "(combined from similar events): ";

/// An Event let through: the note to record it with, and the series it belongs to (one Event
/// object whose count grows with each repeat).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub note: Option<String>,
    pub series: String,
}

impl Admitted {
    /// `event` as it is to be recorded.
    pub fn event(&self, event: &KubeEvent) -> KubeEvent {
        KubeEvent {
            type_: event.type_,
            reason: event.reason.clone(),
            note: self.note.clone(),
            action: event.action.clone(),
            secondary: event.secondary.clone(),
        }
    }
}

/// Decides, for each Event in turn, whether it is sent and as which series. Time comes from
/// `clock`, so tests move it by hand.
pub struct Correlator<C: Clock = DefaultClock> {
    clock: C,
    /// Each regarded object's Events, as one token bucket per object and reason.
    budgets: RateLimiter<String, HashMapStateStore<String>, C, NoOpMiddleware<C::Instant>>,
    /// Events alike but for their note, by what makes them alike.
    similar: Mutex<HashMap<String, Similar<C::Instant>>>,
}

/// The notes seen of Events alike but for their note, and when the last came.
struct Similar<I> {
    notes: HashSet<String>,
    last: I,
}

impl Default for Correlator {
    fn default() -> Self {
        Self::with_clock(DefaultClock::default())
    }
}

impl<C: Clock + Clone> Correlator<C> {
    pub fn with_clock(clock: C) -> Self {
        let quota = Quota::with_period(REASON_REFILL).expect("a non-zero period").allow_burst(REASON_BURST);
        Self { budgets: RateLimiter::hashmap_with_clock(quota, clock.clone()), clock, similar: Mutex::default() }
    }

    /// `event`, about `regarding`, as it is to be sent, or `None` when the budget of its object
    /// and reason is spent. Similar Events (same reporter, object, type and reason) keep their
    /// own note for the first nine distinct notes within ten minutes; later ones are one
    /// combined series.
    pub fn correlate(&self, reporter: &Reporter, regarding: &ObjectReference, event: &KubeEvent) -> Option<Admitted> {
        let object = format!(
            "{}/{}/{:?}/{:?}/{:?}/{:?}",
            reporter.controller,
            reporter.instance.as_deref().unwrap_or_default(),
            regarding.kind,
            regarding.namespace,
            regarding.name,
            regarding.uid
        );
        let alike = format!("{object}/{:?}/{}", event.type_, event.reason);
        let note = event.note.clone().unwrap_or_default();
        let admitted = if self.kept_apart(&alike, &note) {
            Admitted { series: format!("{alike}/{note}"), note: event.note.clone() }
        } else {
            Admitted { series: format!("{alike}/{COMBINED}"), note: Some(format!("{COMBINED}{note}")) }
        };
        let sent = self.budgets.check_key(&alike).is_ok();
        if self.budgets.len() > BUDGETS_KEPT {
            self.budgets.retain_recent();
        }
        sent.then_some(admitted)
    }

    /// Whether an Event with `note` stays apart from the others alike (`alike`), remembering it.
    fn kept_apart(&self, alike: &str, note: &str) -> bool {
        let now = self.clock.now();
        let idle = |last: C::Instant| Duration::from(now.duration_since(last)) >= SIMILAR_WINDOW;
        let mut similar = self.similar.lock().unwrap_or_else(PoisonError::into_inner);
        if similar.len() >= SIMILAR_KEPT && !similar.contains_key(alike) {
            similar.retain(|_, s| !idle(s.last));
            if similar.len() >= SIMILAR_KEPT {
                let mut lasts: Vec<C::Instant> = similar.values().map(|s| s.last).collect();
                let (_, cutoff, _) = lasts.select_nth_unstable(SIMILAR_KEPT / 4);
                let cutoff = *cutoff;
                similar.retain(|_, s| s.last > cutoff);
            }
        }
        let group = similar.entry(alike.to_string()).or_insert_with(|| Similar { notes: HashSet::new(), last: now });
        if idle(group.last) {
            group.notes.clear();
        }
        group.last = now;
        if group.notes.contains(note) {
            return true;
        }
        if group.notes.len() < DISTINCT_NOTES {
            group.notes.insert(note.to_string());
            return true;
        }
        false
    }
}

/// One kube-rs recorder per series: the same Event recorded again becomes one Event object
/// whose series counts the repeats, as client-go's correlator does, instead of one object per
/// reconcile; Events that differ only in their note stay apart (a recorder keys its series
/// without the note), unless the correlator combined them.
#[derive(Clone, Default)]
pub struct Recorders(Arc<Mutex<HashMap<String, (Recorder, Instant)>>>);

/// How long an unused recorder is kept; a repeat after that starts a new Event object.
const RECORDER_IDLE: Duration = Duration::from_secs(600);

/// The most recorders kept: each holds its Event (about 4 KiB). Past this the least recently
/// used quarter goes; a repeat of one of those starts a new Event object, as one evicted from
/// client-go's correlator cache does. What repeats (a failing write, a reconciler's warning)
/// repeats within seconds, and stays among the most recent 256.
pub const RECORDERS_KEPT: usize = 256;

impl Recorders {
    /// The recorder of `series`, reporting as `reporter`.
    pub fn for_series(&self, client: &Client, reporter: &Reporter, series: &str) -> Recorder {
        let now = Instant::now();
        let mut recorders = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        recorders.retain(|_, (_, used)| now.duration_since(*used) < RECORDER_IDLE);
        if recorders.len() >= RECORDERS_KEPT && !recorders.contains_key(series) {
            let mut uses: Vec<Instant> = recorders.values().map(|(_, used)| *used).collect();
            let (_, cutoff, _) = uses.select_nth_unstable(RECORDERS_KEPT / 4);
            let cutoff = *cutoff;
            recorders.retain(|_, (_, used)| *used > cutoff);
        }
        let (recorder, used) = recorders.entry(series.to_string()).or_insert_with(|| (Recorder::new(client.clone(), reporter.clone()), now));
        *used = now;
        recorder.clone()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;
    use kube::runtime::events::EventType;

    use super::*;

    fn raycluster_controller() -> Reporter {
        Reporter { controller: "raycluster-controller".into(), instance: None }
    }

    fn cluster(name: &str) -> ObjectReference {
        ObjectReference { kind: Some("RayCluster".into()), namespace: Some("ns".into()), name: Some(name.into()), ..Default::default() }
    }

    fn created_note(i: usize) -> Option<String> {
        Some(format!("Created worker Pod ns/big-worker-{i}"))
    }

    fn created_worker(i: usize) -> KubeEvent {
        KubeEvent {
            type_: EventType::Normal,
            reason: "CreatedWorkerPod".into(),
            note: created_note(i),
            action: "CreatedWorkerPod".into(),
            secondary: None,
        }
    }

    fn warning(reason: &str) -> KubeEvent {
        KubeEvent { type_: EventType::Warning, reason: reason.into(), note: Some("quota exceeded".into()), action: reason.into(), secondary: None }
    }

    /// What `correlator` makes of a hundred `CreatedWorkerPod` Events about `name`, in order.
    fn a_hundred_workers_created(correlator: &Correlator<FakeRelativeClock>, name: &str) -> Vec<Option<Admitted>> {
        (0..100).map(|i| correlator.correlate(&raycluster_controller(), &cluster(name), &created_worker(i))).collect()
    }

    #[test]
    fn a_hundred_workers_created_send_nine_events_of_their_own_then_one_combined_series_within_the_burst() {
        let correlator = Correlator::with_clock(FakeRelativeClock::default());
        let seen = a_hundred_workers_created(&correlator, "big");
        let sent: Vec<&Admitted> = seen.iter().flatten().collect();
        assert_eq!(sent.len(), 25, "a reason's burst is 25 Events about one object");
        assert!(seen[25..].iter().all(Option::is_none), "after the burst the rest wait for the refill");
        for (i, admitted) in sent.iter().take(DISTINCT_NOTES).enumerate() {
            assert_eq!(admitted.note, created_note(i), "the first nine keep their own note");
        }
        let combined: HashSet<&str> = sent[DISTINCT_NOTES..].iter().map(|a| a.series.as_str()).collect();
        assert_eq!(combined.len(), 1, "the tenth distinct note on are one series");
        assert_eq!(sent[DISTINCT_NOTES].note.as_deref(), Some("(combined from similar events): Created worker Pod ns/big-worker-9"));
    }

    #[test]
    fn another_cluster_has_a_burst_of_its_own() {
        let correlator = Correlator::with_clock(FakeRelativeClock::default());
        a_hundred_workers_created(&correlator, "big");
        let small = correlator.correlate(&raycluster_controller(), &cluster("small"), &created_worker(0));
        assert_eq!(small.and_then(|a| a.note), created_note(0));
    }

    #[test]
    fn a_flood_of_one_reason_leaves_another_reasons_events_about_the_object_their_own_burst() {
        let correlator = Correlator::with_clock(FakeRelativeClock::default());
        a_hundred_workers_created(&correlator, "big");
        let quota = correlator.correlate(&raycluster_controller(), &cluster("big"), &warning("FailedToCreateWorkerPod"));
        assert_eq!(quota.and_then(|a| a.note).as_deref(), Some("quota exceeded"));
    }

    #[test]
    fn a_spent_budget_lets_one_more_event_through_every_five_minutes() {
        let clock = FakeRelativeClock::default();
        let correlator = Correlator::with_clock(clock.clone());
        a_hundred_workers_created(&correlator, "big");
        let quota = || correlator.correlate(&raycluster_controller(), &cluster("big"), &created_worker(1000));
        clock.advance(Duration::from_secs(299));
        assert_eq!(quota(), None, "not yet refilled");
        clock.advance(Duration::from_secs(1));
        assert!(quota().is_some(), "one token back after five minutes");
        assert_eq!(quota(), None, "and only one");
    }

    #[test]
    fn similar_events_keep_their_own_notes_again_ten_minutes_after_the_last() {
        let clock = FakeRelativeClock::default();
        let correlator = Correlator::with_clock(clock.clone());
        let seen = a_hundred_workers_created(&correlator, "big");
        assert!(seen[DISTINCT_NOTES].as_ref().is_some_and(|a| a.note.as_deref().is_some_and(|n| n.starts_with(COMBINED))));
        clock.advance(SIMILAR_WINDOW);
        let later = correlator.correlate(&raycluster_controller(), &cluster("big"), &created_worker(500));
        assert_eq!(later.and_then(|a| a.note), created_note(500), "a quiet spell forgets the similar ones");
    }

    #[test]
    fn an_event_repeated_stays_in_its_own_series() {
        let correlator = Correlator::with_clock(FakeRelativeClock::default());
        let again = || correlator.correlate(&raycluster_controller(), &cluster("big"), &warning("FailedToCreateWorkerPod"));
        let (first, second) = (again(), again());
        assert_eq!(first, second, "a repeat is the same Event in the same series");
        assert_eq!(first.and_then(|a| a.note).as_deref(), Some("quota exceeded"));
    }

    #[test]
    fn groups_of_similar_events_stay_bounded() {
        let correlator = Correlator::with_clock(FakeRelativeClock::default());
        for i in 0..10_000 {
            correlator.correlate(&raycluster_controller(), &cluster(&format!("c{i}")), &created_worker(0));
        }
        let groups = correlator.similar.lock().expect("not poisoned").len();
        assert!(groups <= SIMILAR_KEPT, "{groups} groups remembered");
    }

    #[tokio::test]
    async fn ten_thousand_distinct_series_keep_at_most_the_recorder_cap() {
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("a URL"));
        let client = Client::try_from(config).expect("a client");
        let recorders = Recorders::default();
        for i in 0..10_000 {
            recorders.for_series(&client, &raycluster_controller(), &format!("series {i}"));
        }
        let kept = recorders.len();
        assert!(kept <= RECORDERS_KEPT, "{kept} recorders kept");
        assert!(kept >= RECORDERS_KEPT / 2, "only {kept} recorders kept: the recent ones must stay for their series");
    }
}
