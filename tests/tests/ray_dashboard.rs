//! The Ray dashboard client against real Ray heads: submit, poll, stop, logs, auth and timeouts, no Kubernetes.
//!
//! Needs `$WASMRAY_RAY_VENV` (tests/run installs it). The tests share one plain head, started by
//! the first test that asks; the token test starts a second one, so at most two run at once.
//!
//! A job's log interleaves Ray's lines with the entrypoint's in no fixed order (the
//! `Running entrypoint for job …` line sometimes follows the first output), so tests look for
//! lines in the logs rather than at their end.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::OnceCell;
use wasmray::ray::dashboard::{Dashboard, DashboardError, JobInfo, Submitted};
use wasmray_tests::ray::RayHead;

/// Long enough for any answer of a busy 1-CPU head on 2 cores.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The plain head every test here shares.
async fn head() -> &'static RayHead {
    static HEAD: OnceCell<Result<RayHead, String>> = OnceCell::const_new();
    let head = HEAD
        .get_or_init(|| async {
            let started = Instant::now();
            let head = RayHead::start().await.map_err(|e| format!("{e:#}"));
            eprintln!("the shared Ray head started in {:?}", started.elapsed());
            head
        })
        .await;
    head.as_ref().unwrap_or_else(|e| panic!("the Ray head did not start: {e}"))
}

/// Polls job `id` until its status is `status`, failing on any other terminal status or after 60 s.
async fn wait_for(dashboard: &Dashboard, address: &str, token: Option<&str>, id: &str, status: &str) -> JobInfo {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = dashboard.job(address, token, id).await.expect("polling the job").expect("the job exists");
        if job.status == status {
            return job;
        }
        let terminal = ["SUCCEEDED", "FAILED", "STOPPED"].contains(&job.status.as_str());
        assert!(!terminal && Instant::now() < deadline, "job {id} is not {status}: {job:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_job_runs_to_succeeded_and_its_id_cannot_be_submitted_twice() {
    let (head, dashboard) = (head().await, Dashboard::new(TIMEOUT));
    let address = head.dashboard_address();
    let body = json!({"entrypoint": "python -c \"print('hi')\"", "submission_id": "hi-1", "metadata": {"owner": "wasmray-tests"}});
    assert_eq!(dashboard.submit(&address, None, &body).await.unwrap(), Submitted::New);
    let job = wait_for(&dashboard, &address, None, "hi-1", "SUCCEEDED").await;
    assert_eq!(job.submission_id.as_deref(), Some("hi-1"));
    assert_eq!(job.driver_exit_code, Some(0));
    assert!(job.start_time.is_some() && job.end_time >= job.start_time, "{job:?}");
    assert_eq!(dashboard.submit(&address, None, &body).await.unwrap(), Submitted::AlreadyExists);
    let logs = dashboard.logs_tail(&address, None, "hi-1", 1000).await.unwrap();
    assert!(logs.lines().any(|line| line == "hi"), "{logs:?}");
}

#[tokio::test]
async fn a_failing_entrypoint_is_failed_with_a_message_and_its_logs_hold_its_output() {
    let (head, dashboard) = (head().await, Dashboard::new(TIMEOUT));
    let address = head.dashboard_address();
    let body = json!({"entrypoint": "python -c \"import sys; print('boom'); sys.exit(1)\"", "submission_id": "boom-1"});
    assert_eq!(dashboard.submit(&address, None, &body).await.unwrap(), Submitted::New);
    let job = wait_for(&dashboard, &address, None, "boom-1", "FAILED").await;
    assert_eq!(job.error_type.as_deref(), Some("JOB_ENTRYPOINT_COMMAND_ERROR"), "{job:?}");
    assert_eq!(job.driver_exit_code, Some(1));
    assert!(job.message.as_deref().is_some_and(|m| m.contains("exit code 1")), "{job:?}");
    let logs = dashboard.logs_tail(&address, None, "boom-1", 100_000).await.unwrap();
    assert!(logs.contains("boom"), "{logs:?}");
    let tail = dashboard.logs_tail(&address, None, "boom-1", 5).await.unwrap();
    assert!(tail.chars().count() == 5 && logs.ends_with(&tail), "{tail:?} is not the end of {logs:?}");
}

#[tokio::test]
async fn a_running_job_is_stopped() {
    let (head, dashboard) = (head().await, Dashboard::new(TIMEOUT));
    let address = head.dashboard_address();
    let body = json!({"entrypoint": "sleep 600", "submission_id": "sleepy-1"});
    assert_eq!(dashboard.submit(&address, None, &body).await.unwrap(), Submitted::New);
    wait_for(&dashboard, &address, None, "sleepy-1", "RUNNING").await;
    assert!(dashboard.stop(&address, None, "sleepy-1").await.unwrap(), "a running job is stopped");
    let job = wait_for(&dashboard, &address, None, "sleepy-1", "STOPPED").await;
    assert!(job.end_time.is_some(), "{job:?}");
    // Ray says "stopped" while the job's supervisor actor lives, which it does for a moment
    // after the status is STOPPED.
    let deadline = Instant::now() + Duration::from_secs(30);
    while dashboard.stop(&address, None, "sleepy-1").await.unwrap() {
        assert!(Instant::now() < deadline, "an ended job is still stopped again after 30 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn an_unknown_id_is_no_job_and_nothing_to_stop() {
    let (head, dashboard) = (head().await, Dashboard::new(TIMEOUT));
    let address = head.dashboard_address();
    assert_eq!(dashboard.job(&address, None, "nope-123").await.unwrap(), None);
    assert!(!dashboard.stop(&address, None, "nope-123").await.unwrap());
    let error = dashboard.logs_tail(&address, None, "nope-123", 100).await.unwrap_err();
    assert!(matches!(&error, DashboardError::Status { status: 404, body } if body == "Job nope-123 does not exist"), "{error}");
}

#[tokio::test]
async fn an_unknown_field_is_a_400_that_names_it() {
    let (head, dashboard) = (head().await, Dashboard::new(TIMEOUT));
    let body = json!({"entrypoint": "true", "submission_id": "bogus-1", "bogus": 1});
    let error = dashboard.submit(&head.dashboard_address(), None, &body).await.unwrap_err();
    let DashboardError::Status { status: 400, body } = &error else { panic!("{error}") };
    assert!(body.contains("unexpected keyword argument 'bogus'") && !body.contains('\n'), "{body:?}");
    assert!(!error.retryable());
}

#[tokio::test]
async fn a_job_submitted_with_the_cli_is_seen_by_the_client() {
    let (head, dashboard) = (head().await, Dashboard::new(TIMEOUT));
    let address = head.dashboard_address();
    head.submit_cli("cli-1", "echo from-the-cli && python -c \"print(6 * 7)\"").await.unwrap();
    wait_for(&dashboard, &address, None, "cli-1", "SUCCEEDED").await;
    // Ray's own "Running entrypoint for job …" line may come before, between or after them.
    let logs = dashboard.logs_tail(&address, None, "cli-1", 1000).await.unwrap();
    assert!(logs.contains("from-the-cli\n") && logs.contains("42\n"), "{logs:?}");
}

#[tokio::test]
async fn a_token_head_answers_only_requests_with_its_token() {
    let token = "wasmray-test-token-7f3a";
    let started = Instant::now();
    let head = RayHead::start_with_token(token).await.unwrap();
    eprintln!("the token Ray head started in {:?}", started.elapsed());
    let (dashboard, address) = (Dashboard::new(TIMEOUT), head.dashboard_address());
    let body = json!({"entrypoint": "echo with-token", "submission_id": "token-1"});

    let error = dashboard.submit(&address, None, &body).await.unwrap_err();
    assert!(matches!(error, DashboardError::Unauthorized { status: 401, .. }), "{error}");
    let error = dashboard.job(&address, Some("wrong"), "token-1").await.unwrap_err();
    assert!(matches!(error, DashboardError::Unauthorized { status: 403, .. }), "{error}");
    assert_eq!(error.label(), "unauthorized");
    assert!(!error.to_string().contains(token));

    assert_eq!(dashboard.submit(&address, Some(token), &body).await.unwrap(), Submitted::New);
    wait_for(&dashboard, &address, Some(token), "token-1", "SUCCEEDED").await;
    // A Secret's trailing newline does not spoil the token.
    let logs = dashboard.logs_tail(&address, Some(&format!("{token}\n")), "token-1", 100).await.unwrap();
    assert!(logs.contains("with-token\n"), "{logs:?}");

    head.submit_cli("token-cli-1", "echo cli-with-token").await.unwrap();
    wait_for(&dashboard, &address, Some(token), "token-cli-1", "SUCCEEDED").await;
}

#[tokio::test]
async fn a_dashboard_that_never_answers_is_a_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    // Accepts and holds every connection, reading nothing and answering nothing.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let dashboard = Dashboard::new(Duration::from_millis(500));
    let started = Instant::now();
    let error = dashboard.job(&address, None, "any").await.unwrap_err();
    assert!(matches!(error, DashboardError::Timeout), "{error}");
    assert!(error.retryable());
    assert!(started.elapsed() < Duration::from_secs(5), "gave up only after {:?}", started.elapsed());
    silent.abort();
}

#[tokio::test]
async fn a_closed_port_is_a_retryable_connect_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let error = Dashboard::new(TIMEOUT).job(&format!("127.0.0.1:{port}"), None, "any").await.unwrap_err();
    assert!(matches!(&error, DashboardError::Connect(m) if m.contains("refused")), "{error}");
    assert!(error.retryable());
    assert_eq!(error.label(), "connect");
}
