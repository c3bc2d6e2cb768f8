//! The writer's fair share of the API server: writes take turns by primary, so one cluster's
//! five hundred creates cannot keep another cluster's one create waiting (kuberay#3909).
//!
//! A turn is one token of the `--qps`/`--burst` bucket and one of at most `--writes-in-flight`
//! writes under way. Turns go round-robin over the primaries that wait, each primary's own
//! writes in the order it asked. A primary alone gets every turn, so one big cluster still
//! writes as fast as the budget allows; a second one gets every other turn from its first ask.

use std::collections::VecDeque;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{Notify, oneshot};

/// Whose write it is: the primary a plan was decided for (`RayCluster default/big`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner(String);

impl Owner {
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        Self(format!("{kind} {namespace}/{name}"))
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who waits for a turn, by owner, in the order the owners take turns. Pure: the order is the
/// whole of fairness, so it is tested on its own.
#[derive(Debug)]
pub struct Rotation<K, W> {
    owners: VecDeque<(K, VecDeque<W>)>,
}

impl<K, W> Default for Rotation<K, W> {
    fn default() -> Self {
        Self { owners: VecDeque::new() }
    }
}

impl<K: PartialEq, W> Rotation<K, W> {
    /// `waiter` waits behind its owner's earlier waiters; a new owner joins the end of the line.
    pub fn push(&mut self, owner: K, waiter: W) {
        match self.owners.iter_mut().find(|(k, _)| *k == owner) {
            Some((_, waiters)) => waiters.push_back(waiter),
            None => self.owners.push_back((owner, VecDeque::from([waiter]))),
        }
    }

    /// The first waiter of the owner whose turn it is; that owner goes to the end of the line
    /// if it has more.
    pub fn next(&mut self) -> Option<W> {
        let (owner, mut waiters) = self.owners.pop_front()?;
        let waiter = waiters.pop_front();
        if !waiters.is_empty() {
            self.owners.push_back((owner, waiters));
        }
        waiter
    }

    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }
}

/// How much of the API server the writer may use.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Writes a second, on average.
    pub qps: f32,
    /// Writes allowed at once after a quiet spell.
    pub burst: u32,
    /// Writes under way at once: beyond the API server's own parallelism more in flight only
    /// lengthen the line a newcomer's write waits in.
    pub in_flight: usize,
}

impl Default for Budget {
    /// KubeRay's client defaults (100 QPS, burst 200); 16 in flight, where a raw parallel client
    /// already reaches the local API server's limit (BENCHMARKS.md).
    fn default() -> Self {
        Self { qps: 100.0, burst: 200, in_flight: 16 }
    }
}

/// The turns of every write of one writer; cheap to clone.
#[derive(Clone)]
pub struct Share {
    inner: Arc<Inner>,
}

struct Inner {
    limiter: DefaultDirectRateLimiter,
    state: Mutex<State>,
    /// Rung when a waiter arrives or a write ends: the dispatcher looks again.
    changed: Notify,
    dispatcher: OnceLock<()>,
}

struct State {
    waiting: Rotation<Owner, oneshot::Sender<Turn>>,
    in_flight: usize,
    max_in_flight: usize,
}

/// The right to send one write; dropping it (the write done) frees its place in flight.
pub struct Turn {
    inner: Arc<Inner>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.inner.state().in_flight -= 1;
        self.inner.changed.notify_one();
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Share {
    pub fn new(budget: Budget) -> Self {
        let burst = NonZeroU32::new(budget.burst).unwrap_or(NonZeroU32::MIN);
        let period = Duration::from_secs_f64(1.0 / f64::from(budget.qps.max(f32::MIN_POSITIVE)));
        let quota = Quota::with_period(period).unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX)).allow_burst(burst);
        let state = State { waiting: Rotation::default(), in_flight: 0, max_in_flight: budget.in_flight.max(1) };
        Self {
            inner: Arc::new(Inner { limiter: RateLimiter::direct(quota), state: Mutex::new(state), changed: Notify::new(), dispatcher: OnceLock::new() }),
        }
    }

    /// Waits for `owner`'s next turn. Dropping the future before the turn comes gives the turn
    /// back when it does.
    pub async fn turn(&self, owner: Owner) -> Turn {
        // The dispatcher starts with the first write, inside the runtime that performs it.
        self.inner.dispatcher.get_or_init(|| {
            tokio::spawn(dispatch(self.inner.clone()));
        });
        let (tx, rx) = oneshot::channel();
        self.inner.state().waiting.push(owner, tx);
        self.inner.changed.notify_one();
        match rx.await {
            Ok(turn) => turn,
            // The dispatcher is gone only with its runtime; a write then goes out unmetered.
            Err(_) => {
                self.inner.state().in_flight += 1;
                Turn { inner: self.inner.clone() }
            }
        }
    }
}

/// Hands out turns: whenever a place in flight is free and someone waits, takes a token and
/// gives the turn to the owner whose turn it is.
async fn dispatch(inner: Arc<Inner>) {
    loop {
        let ready = {
            let state = inner.state();
            state.in_flight < state.max_in_flight && !state.waiting.is_empty()
        };
        if !ready {
            // `notify_one` keeps a permit when nobody waits yet, so a change between the check
            // and this await is not missed.
            inner.changed.notified().await;
            continue;
        }
        inner.limiter.until_ready().await;
        let next = {
            let mut state = inner.state();
            let next = state.waiting.next();
            if next.is_some() {
                state.in_flight += 1;
            }
            next
        };
        if let Some(waiter) = next {
            // A waiter that gave up drops the turn it was sent, which frees the place again.
            let _ = waiter.send(Turn { inner: inner.clone() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_clusters_write_goes_second_behind_a_big_clusters_queue() {
        let mut line = Rotation::default();
        for i in 0..4 {
            line.push("big", format!("big-{i}"));
        }
        line.push("small", "small-0".to_string());
        let order: Vec<_> = std::iter::from_fn(|| line.next()).collect();
        assert_eq!(order, ["big-0", "small-0", "big-1", "big-2", "big-3"]);
    }

    #[test]
    fn owners_alternate_and_each_keeps_its_own_order() {
        let mut line = Rotation::default();
        line.push("a", 1);
        line.push("a", 2);
        line.push("b", 10);
        line.push("b", 20);
        line.push("c", 100);
        let order: Vec<_> = std::iter::from_fn(|| line.next()).collect();
        assert_eq!(order, [1, 10, 100, 2, 20]);
        assert!(line.is_empty());
    }

    #[test]
    fn an_owner_that_comes_back_after_its_line_ran_out_joins_the_end() {
        let mut line = Rotation::default();
        line.push("a", 1);
        line.push("b", 2);
        assert_eq!(line.next(), Some(1));
        line.push("a", 3);
        assert_eq!(line.next(), Some(2));
        assert_eq!(line.next(), Some(3));
        assert_eq!(line.next(), None);
    }

    #[tokio::test]
    async fn no_more_writes_are_under_way_than_the_budget_allows() {
        let share = Share::new(Budget { qps: 10_000.0, burst: 10_000, in_flight: 2 });
        let first = share.turn(Owner::new("RayCluster", "ns", "big")).await;
        let second = share.turn(Owner::new("RayCluster", "ns", "big")).await;
        let third = share.turn(Owner::new("RayCluster", "ns", "small"));
        tokio::pin!(third);
        assert!(tokio::time::timeout(Duration::from_millis(50), &mut third).await.is_err(), "a third write went out with two under way");
        drop(first);
        let _third = tokio::time::timeout(Duration::from_secs(5), third).await.expect("the freed place goes to the waiting write");
        drop(second);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_does_not_keep_its_place_in_flight() {
        let share = Share::new(Budget { qps: 10_000.0, burst: 10_000, in_flight: 1 });
        let held = share.turn(Owner::new("RayCluster", "ns", "a")).await;
        let gave_up = tokio::time::timeout(Duration::from_millis(20), share.turn(Owner::new("RayCluster", "ns", "b"))).await;
        assert!(gave_up.is_err());
        drop(held);
        tokio::time::timeout(Duration::from_secs(5), share.turn(Owner::new("RayCluster", "ns", "c"))).await.expect("the place is free again");
    }
}
