//! The facts the host gathers outside the reconcile (Serve's answers, deploy outcomes, the upgrade strategy's decision, settings), parsed.
//!
//! A fact that does not parse is treated as absent: a half-understood answer must move nothing.
//! A per-cluster fact is kept only for the clusters this pass looks at (active and pending).

use std::collections::BTreeMap;

use serde::Deserialize;
use wasmray_api::serve::{
    ProxyHealthFact, SERVE_APPLICATIONS_FACT, SERVE_PROXY_FACT, SERVE_SUBMISSION_FACT, ServeApplicationsFact,
    ServeSubmissionFact, UPGRADE_STEP_FACT, UPGRADE_STRATEGY_FACT, UpgradeStepFact, UpgradeStrategyFact, fact_key,
};
use wasmray_guest_sdk::Snapshot;

use crate::vocab::facts;

/// The operator settings a RayService's decisions depend on; absent ones keep KubeRay's defaults.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Settings {
    /// `CLUSTER_DOMAIN`.
    pub cluster_domain: String,
    /// `ENABLE_ZERO_DOWNTIME`: `false` turns upgrades off for RayServices that set no strategy.
    pub enable_zero_downtime: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { cluster_domain: "cluster.local".into(), enable_zero_downtime: true }
    }
}

/// A submission answer with the time the host observed it.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub fact: ServeSubmissionFact,
    pub observed_at: i64,
}

/// What the host knows about one cluster's Serve.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServeFacts {
    pub applications: Option<ServeApplicationsFact>,
    pub proxy: Option<ProxyHealthFact>,
    pub submission: Option<Answer>,
}

/// Everything the host told this reconcile.
#[derive(Debug, Default)]
pub struct Facts {
    /// Per cluster name.
    pub serve: BTreeMap<String, ServeFacts>,
    pub strategy: Option<UpgradeStrategyFact>,
    pub step: Option<UpgradeStepFact>,
    pub settings: Settings,
}

impl Facts {
    /// The snapshot's facts about these clusters.
    pub fn read<'a>(snapshot: &Snapshot, clusters: impl IntoIterator<Item = &'a str>) -> Self {
        fn get<T: for<'de> Deserialize<'de>>(snapshot: &Snapshot, key: &str) -> Option<T> {
            serde_json::from_str(&snapshot.fact(key)?.value).ok()
        }
        let serve = clusters
            .into_iter()
            .map(|c| {
                let submission = snapshot.fact(&fact_key(SERVE_SUBMISSION_FACT, c)).and_then(|f| {
                    let fact: ServeSubmissionFact = serde_json::from_str(&f.value).ok()?;
                    Some(Answer { fact, observed_at: f.observed_at })
                });
                let facts = ServeFacts {
                    applications: get(snapshot, &fact_key(SERVE_APPLICATIONS_FACT, c)),
                    proxy: get(snapshot, &fact_key(SERVE_PROXY_FACT, c)),
                    submission,
                };
                (c.to_owned(), facts)
            })
            .collect();
        Facts {
            serve,
            strategy: get(snapshot, UPGRADE_STRATEGY_FACT),
            step: get(snapshot, UPGRADE_STEP_FACT),
            settings: get(snapshot, facts::OPERATOR_SETTINGS).unwrap_or_default(),
        }
    }

    /// What the host knows about `cluster`'s Serve (nothing, if it was not asked).
    pub fn of(&self, cluster: &str) -> ServeFacts {
        self.serve.get(cluster).cloned().unwrap_or_default()
    }
}
