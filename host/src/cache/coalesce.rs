//! Wake-ups of primaries gathered per key: a burst of child changes becomes one reconcile, and a
//! primary whose children keep changing is reconciled at a bounded rate, not once per change;
//! a child that goes away wakes its primary after one window, whatever the rate.

use std::collections::HashMap;
use std::time::Duration;

use futures::channel::mpsc::{UnboundedReceiver, unbounded};
use futures::{Stream, StreamExt};
use prometheus_client::metrics::gauge::Gauge;
use tokio::time::Instant;

use super::Key;

/// When keys come out: `window` after the first change of a quiet key, so the rest of its
/// burst joins it, and never sooner than `interval` after the key last came out.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    pub window: Duration,
    pub interval: Duration,
}

/// How soon a change must be seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Urgency {
    /// A child's status moved (a Pod scheduled, Running, Ready): paced.
    Paced,
    /// A child is going or gone (deleted, or marked for deletion): its replacement must not wait
    /// for the pace, so one window.
    Prompt,
}

/// The keys waiting and the time each last came out; pure, so its timing is tested without
/// a runtime.
#[derive(Debug, Default)]
struct Gathered {
    due: HashMap<Key, Instant>,
    last_out: HashMap<Key, Instant>,
}

impl Gathered {
    /// Folds a change of `key` in; true when the key was not already waiting.
    fn changed(&mut self, key: Key, urgency: Urgency, now: Instant, pace: Pace) -> bool {
        let earliest = match urgency {
            Urgency::Prompt => now,
            Urgency::Paced => self.last_out.get(&key).map_or(now, |last| *last + pace.interval),
        };
        let due = earliest.max(now + pace.window);
        match self.due.get_mut(&key) {
            Some(waiting) => {
                *waiting = (*waiting).min(due);
                false
            }
            None => {
                self.due.insert(key, due);
                true
            }
        }
    }

    /// The earliest time a waiting key is due.
    fn next_due(&self) -> Option<Instant> {
        self.due.values().min().copied()
    }

    /// Takes the keys due by `now`; forgets when keys came out once that no longer holds them back.
    fn take_due(&mut self, now: Instant, pace: Pace) -> Vec<Key> {
        let due: Vec<Key> = self.due.iter().filter(|(_, at)| **at <= now).map(|(key, _)| key.clone()).collect();
        for key in &due {
            self.due.remove(key);
            self.last_out.insert(key.clone(), now);
        }
        self.last_out.retain(|_, last| now.duration_since(*last) < pace.interval);
        due
    }
}

/// Keys from `rx` paced by `pace`; a key arriving while it is already waiting is folded into
/// the waiting one. `waiting` counts the keys gathered and not yet handed on.
pub fn coalesce(mut rx: UnboundedReceiver<(Key, Urgency)>, pace: Pace, waiting: Gauge) -> impl Stream<Item = Key> + Send + 'static {
    let (tx, out) = unbounded();
    tokio::spawn(async move {
        let mut gathered = Gathered::default();
        loop {
            let wake = gathered.next_due();
            tokio::select! {
                next = rx.next() => match next {
                    Some((key, urgency)) => if gathered.changed(key, urgency, Instant::now(), pace) { waiting.inc(); },
                    None => break,
                },
                () = async { tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)).await }, if wake.is_some() => {
                    for key in gathered.take_due(Instant::now(), pace) {
                        waiting.dec();
                        if tx.unbounded_send(key).is_err() {
                            return;
                        }
                    }
                }
            }
        }
        // The sender is gone: what still waits is handed on before the stream ends.
        let left: Vec<Key> = gathered.due.into_keys().collect();
        waiting.dec_by(i64::try_from(left.len()).unwrap_or(i64::MAX));
        for key in left {
            let _ = tx.unbounded_send(key);
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::Urgency::{Paced, Prompt};
    use super::*;

    const PACE: Pace = Pace { window: Duration::from_millis(250), interval: Duration::from_secs(1) };

    #[test]
    fn a_quiet_key_waits_one_window_and_a_busy_one_one_interval() {
        let start = Instant::now();
        let ms = |n: u64| start + Duration::from_millis(n);
        let mut gathered = Gathered::default();
        assert!(gathered.changed(Key::new("ns", "big"), Paced, start, PACE));
        assert!(!gathered.changed(Key::new("ns", "big"), Paced, ms(100), PACE), "folded into the waiting one");
        assert_eq!(gathered.next_due(), Some(ms(250)));
        assert!(gathered.take_due(ms(249), PACE).is_empty());
        assert_eq!(gathered.take_due(ms(250), PACE), [Key::new("ns", "big")]);

        gathered.changed(Key::new("ns", "big"), Paced, ms(300), PACE);
        assert_eq!(gathered.next_due(), Some(ms(1250)), "a second after it last came out, not a window after the change");
        gathered.changed(Key::new("ns", "small"), Paced, ms(400), PACE);
        assert_eq!(gathered.next_due(), Some(ms(650)), "another key is not held back by the busy one");
        assert_eq!(gathered.take_due(ms(650), PACE), [Key::new("ns", "small")]);
        assert_eq!(gathered.take_due(ms(1250), PACE), [Key::new("ns", "big")]);

        gathered.take_due(ms(3000), PACE);
        assert!(gathered.last_out.is_empty(), "keys quiet for an interval are forgotten");
        gathered.changed(Key::new("ns", "big"), Paced, ms(3000), PACE);
        assert_eq!(gathered.next_due(), Some(ms(3250)), "quiet again: one window");
    }

    #[test]
    fn a_child_going_away_is_seen_after_one_window_however_busy_its_primary() {
        let start = Instant::now();
        let ms = |n: u64| start + Duration::from_millis(n);
        let mut gathered = Gathered::default();
        gathered.changed(Key::new("ns", "big"), Paced, start, PACE);
        gathered.take_due(ms(250), PACE);
        gathered.changed(Key::new("ns", "big"), Paced, ms(300), PACE);
        assert_eq!(gathered.next_due(), Some(ms(1250)));
        assert!(!gathered.changed(Key::new("ns", "big"), Prompt, ms(400), PACE), "still one waiting key");
        assert_eq!(gathered.next_due(), Some(ms(650)), "brought forward to one window");
        gathered.changed(Key::new("ns", "big"), Paced, ms(500), PACE);
        assert_eq!(gathered.next_due(), Some(ms(650)), "a later paced change does not push it back");
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_changes_for_one_primary_comes_out_once() {
        let (tx, rx) = unbounded();
        let waiting = Gauge::default();
        let mut out = Box::pin(coalesce(rx, PACE, waiting.clone()));
        for _ in 0..100 {
            tx.unbounded_send((Key::new("ns", "big"), Paced)).unwrap();
        }
        tx.unbounded_send((Key::new("ns", "small"), Paced)).unwrap();
        let mut first = vec![out.next().await.unwrap(), out.next().await.unwrap()];
        first.sort();
        assert_eq!(first, [Key::new("ns", "big"), Key::new("ns", "small")]);
        assert_eq!(waiting.get(), 0, "nothing left waiting once handed on");

        let before = Instant::now();
        tx.unbounded_send((Key::new("ns", "big"), Paced)).unwrap();
        assert_eq!(out.next().await, Some(Key::new("ns", "big")), "a later change is a later reconcile");
        assert!(Instant::now() - before >= Duration::from_millis(750), "paced: a second after the first");
        tx.unbounded_send((Key::new("ns", "small"), Paced)).unwrap();
        drop(tx);
        assert_eq!(out.next().await, Some(Key::new("ns", "small")), "what waits when the sender goes is still handed on");
        assert_eq!(out.next().await, None);
    }
}
