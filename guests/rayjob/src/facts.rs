//! The facts the host gathers outside the reconcile (dashboard answers, submission results, settings), parsed.
//!
//! A fact about another job id (left over from an earlier attempt) is ignored: every job fact
//! names the submission id it is about.

use serde::Deserialize;
use wasmray_api::JobStatus;
use wasmray_guest_sdk::Snapshot;

use crate::vocab::{self, facts};

/// What the dashboard said about the job (`ray.io/job-info`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobInfo {
    pub job_id: String,
    /// `true` when the dashboard answered that no job has this id (HTTP 404).
    #[serde(default)]
    pub not_found: bool,
    #[serde(default)]
    pub status: Option<JobStatus>,
    #[serde(default)]
    pub message: Option<String>,
    /// Unix milliseconds; 0 or absent: not started.
    #[serde(default)]
    pub start_time: Option<i64>,
    #[serde(default)]
    pub end_time: Option<i64>,
    /// For a FAILED job: the end of its logs, fetched once by the host (a few KB at most).
    #[serde(default)]
    pub logs_tail: Option<String>,
}

/// Whether the dashboard answers (`wasmray.dev/dashboard`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Dashboard {
    pub reachable: bool,
    /// When the current run of failed queries began (Unix milliseconds).
    #[serde(default)]
    pub since: Option<i64>,
    #[serde(default)]
    pub message: Option<String>,
}

/// HTTPMode: the outcome of the host's submission (`wasmray.dev/job-submission`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Submission {
    pub job_id: String,
    /// `true`: the dashboard accepted it (or already had it); `false`: it refused or failed.
    pub submitted: bool,
    #[serde(default)]
    pub message: Option<String>,
}

/// The operator settings a RayJob's decisions depend on; absent ones keep KubeRay's defaults.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Settings {
    /// Feature gate `RayJobDeletionPolicy` (off in v1.5).
    pub ray_job_deletion_policy: bool,
    /// `DELETE_RAYJOB_CR_AFTER_JOB_FINISHES` / `deleteRayJobAfterJobFinishes`.
    pub delete_ray_job_after_job_finishes: bool,
    /// `RAYJOB_DEPLOYMENT_STATUS_TRANSITION_GRACE_PERIOD_SECONDS`.
    pub ray_job_transition_grace_period_seconds: i64,
    /// v1.7's `RAYJOB_STATUS_CHECK_TIMEOUT_SECONDS`.
    pub ray_job_status_check_timeout_seconds: i64,
    /// `CLUSTER_DOMAIN`.
    pub cluster_domain: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ray_job_deletion_policy: false,
            delete_ray_job_after_job_finishes: false,
            ray_job_transition_grace_period_seconds: vocab::DEFAULT_GRACE_PERIOD_S,
            ray_job_status_check_timeout_seconds: vocab::DEFAULT_STATUS_CHECK_TIMEOUT_S,
            cluster_domain: "cluster.local".into(),
        }
    }
}

/// Everything the host told this reconcile.
#[derive(Debug, Default)]
pub struct Facts {
    pub job_info: Option<JobInfo>,
    pub dashboard: Option<Dashboard>,
    pub submission: Option<Submission>,
    pub settings: Settings,
}

impl Facts {
    /// The facts of the snapshot about `job_id` (the id in `status.jobId`); one that does not
    /// parse is treated as absent, since a half-understood dashboard answer must not end a job.
    pub fn read(snapshot: &Snapshot, job_id: Option<&str>) -> Self {
        fn get<T: for<'de> Deserialize<'de>>(snapshot: &Snapshot, key: &str) -> Option<T> {
            serde_json::from_str(&snapshot.fact(key)?.value).ok()
        }
        let ours = |id: &str| job_id.is_some_and(|j| j == id);
        Facts {
            job_info: get::<JobInfo>(snapshot, facts::JOB_INFO).filter(|i| ours(&i.job_id)),
            dashboard: get(snapshot, facts::DASHBOARD),
            submission: get::<Submission>(snapshot, facts::SUBMISSION).filter(|s| ours(&s.job_id)),
            settings: get(snapshot, facts::OPERATOR_SETTINGS).unwrap_or_default(),
        }
    }
}
