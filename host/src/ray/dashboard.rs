//! A client of Ray's dashboard: the Jobs API (`/api/jobs/`: submit, poll, stop, read logs), the Serve API (`/api/serve/applications/`: deploy, read) and a head's Serve proxy health.
//!
//! Guarantees:
//! - Every request, connecting included, gives up after the client's timeout with
//!   [`DashboardError::Timeout`]; a dashboard that accepts and never answers cannot hang a
//!   reconcile.
//! - Clones share one connection pool, so one `Dashboard` can serve every RayJob.
//! - The token (KubeRay's `x-ray-authorization: Bearer <token>`) is marked sensitive and never
//!   appears in an error.
//!
//! Assumptions:
//! - `address` is what KubeRay writes in a RayJob's `status.dashboardURL`: `host:port`, no
//!   scheme. `http://host:port` and a trailing slash are accepted too. The head's dashboard
//!   serves plain HTTP only, so `https://` is refused rather than silently downgraded.
//!
//! Caveats:
//! - Submitting is not idempotent on Ray's side: a second submit of the same `submission_id`
//!   is a 500 whose traceback ends in `ValueError: Job with submission_id … already exists`. That
//!   answer is [`Submitted::AlreadyExists`], so a retried submit after a lost answer is safe.
//! - Requests carry no `User-Agent`, `Origin`, `Referer` or `Sec-Fetch-*` header: the dashboard
//!   refuses POSTs that look like a browser's with 405.
//! - Pooled connections run as tasks on the tokio runtime that opened them and end with it:
//!   keep a `Dashboard` to one runtime (tests, with a runtime each, make one per test).
//!
//! Errors: the dashboard's error answers are text/plain Python tracebacks; only their last line
//! with a letter or digit in it (the exception, the one line that says what went wrong) is kept,
//! at most 500 characters, in [`DashboardError::Status`] and [`DashboardError::Unauthorized`].

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;

/// The header KubeRay sends the dashboard token in, as `Bearer <token>`.
pub const TOKEN_HEADER: &str = "x-ray-authorization";

/// The largest answer read. Only logs get big: Ray returns a job's whole log in one JSON string.
const MAX_BODY: usize = 64 << 20;
/// Characters of an error answer's last line kept in an error.
const MAX_ERROR_LINE: usize = 500;
/// Idle pooled connections are closed before aiohttp's keep-alive (75 s) would close them under
/// a request being sent.
const POOL_IDLE: Duration = Duration::from_secs(30);

/// A client of Ray's dashboard HTTP API; cheap to clone (shares one connection pool).
#[derive(Clone, Debug)]
pub struct Dashboard {
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

/// The outcome of a submit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// Ray accepted a new job.
    New,
    /// A job with this submission id was submitted before (it may have finished since).
    AlreadyExists,
}

/// What GET /api/jobs/<id> answers (only the fields the operator uses; unknown fields ignored).
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct JobInfo {
    /// The id the job was submitted with.
    pub submission_id: Option<String>,
    /// Ray's job id (`02000000`), set only once the entrypoint has called `ray.init()`.
    pub job_id: Option<String>,
    /// `PENDING`, `RUNNING`, `STOPPED`, `SUCCEEDED` or `FAILED`.
    pub status: String,
    /// A human-readable account of the status (for FAILED, with the tail of the logs).
    pub message: Option<String>,
    /// Why a FAILED job failed, e.g. `JOB_ENTRYPOINT_COMMAND_ERROR`.
    pub error_type: Option<String>,
    /// Milliseconds since the epoch.
    pub start_time: Option<i64>,
    /// Milliseconds since the epoch; `None` while the job runs.
    pub end_time: Option<i64>,
    /// The entrypoint's exit code, once it has exited on its own.
    pub driver_exit_code: Option<i64>,
}

/// What GET /api/serve/applications/ answers (only what the operator uses).
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
pub struct ServeDetails {
    /// Application name to its details; empty before Serve ever ran.
    #[serde(default)]
    pub applications: std::collections::BTreeMap<String, ServeApplicationDetails>,
    /// Serve's `target_capacity`, when one was set.
    #[serde(default)]
    pub target_capacity: Option<f64>,
}

/// One Serve application.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
pub struct ServeApplicationDetails {
    /// `NOT_STARTED`, `DEPLOYING`, `DEPLOY_FAILED`, `RUNNING`, `UNHEALTHY` or `DELETING`.
    pub status: String,
    #[serde(default)]
    pub message: Option<String>,
    /// Deployment name to its details.
    #[serde(default)]
    pub deployments: std::collections::BTreeMap<String, ServeDeploymentDetails>,
}

/// One Serve deployment.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
pub struct ServeDeploymentDetails {
    /// `UPDATING`, `HEALTHY`, `UNHEALTHY`, `DEPLOY_FAILED`, `UPSCALING` or `DOWNSCALING`.
    pub status: String,
    #[serde(default)]
    pub message: Option<String>,
}

/// Everything a dashboard call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// The address (or the token) cannot make a request.
    #[error("bad dashboard address: {0}")]
    BadAddress(String),
    /// No complete answer within the client's timeout.
    #[error("the dashboard did not answer in time")]
    Timeout,
    /// The dashboard could not be reached, or the connection broke before the answer was read.
    #[error("could not reach the dashboard: {0}")]
    Connect(String),
    /// 401 (no token) or 403 (a wrong one).
    #[error("the dashboard refused the request ({status}): {body}")]
    Unauthorized {
        /// The HTTP status.
        status: u16,
        /// The last non-empty line of the answer.
        body: String,
    },
    /// Any other answer that is not a success.
    #[error("the dashboard answered {status}: {body}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The last non-empty line of the answer.
        body: String,
    },
    /// A success whose body is not what the Jobs API answers.
    #[error("unexpected answer from the dashboard: {0}")]
    Decode(String),
}

impl DashboardError {
    /// The metric label of this kind of failure.
    pub fn label(&self) -> &'static str {
        match self {
            Self::BadAddress(_) => "bad_address",
            Self::Timeout => "timeout",
            Self::Connect(_) => "connect",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Status { .. } => "status",
            Self::Decode(_) => "decode",
        }
    }

    /// Whether the same call may succeed later without anything changing on our side: the head
    /// is starting or busy (timeouts, refused connections, 5xx such as `No available agent to
    /// submit job`), as opposed to a wrong address, token or request.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Timeout | Self::Connect(_) => true,
            Self::Status { status, .. } => *status >= 500 || *status == 429,
            Self::BadAddress(_) | Self::Unauthorized { .. } | Self::Decode(_) => false,
        }
    }
}

impl Dashboard {
    /// Every request gives up after `timeout` (connect + answer).
    pub fn new(timeout: std::time::Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(POOL_IDLE).build(connector);
        Self { client, timeout }
    }

    /// GET /api/jobs/<id>: Ok(None) on 404.
    pub async fn job(&self, address: &str, token: Option<&str>, id: &str) -> Result<Option<JobInfo>, DashboardError> {
        let answer = self.send(Method::GET, address, &job_path(id, ""), token, None).await?;
        match answer.status {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => answer.json().map(Some),
            _ => Err(answer.into_error()),
        }
    }

    /// POST /api/jobs/ with `body` as given (exact JSON). A 500 whose body says the id "already
    /// exists" is Ok(Submitted::AlreadyExists).
    ///
    /// The body goes out unchanged: the dashboard refuses (400) any field it does not know, so
    /// the caller decides exactly what is sent.
    pub async fn submit(
        &self,
        address: &str,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> Result<Submitted, DashboardError> {
        let answer = self.send(Method::POST, address, "/api/jobs/", token, Some(body)).await?;
        if answer.status.is_success() {
            Ok(Submitted::New)
        } else if already_exists(answer.status, &answer.body) {
            Ok(Submitted::AlreadyExists)
        } else {
            Err(answer.into_error())
        }
    }

    /// POST /api/jobs/<id>/stop: Ok(true) when stopped, Ok(false) when it had already ended; a
    /// 404 is Ok(false).
    ///
    /// Caveat: Ray answers `true` whenever the job's supervisor actor is still alive, and that
    /// actor outlives the job's terminal status by a moment; so `true` means "a stop was sent",
    /// and a job that has just become STOPPED (or SUCCEEDED) may still answer `true` once more.
    pub async fn stop(&self, address: &str, token: Option<&str>, id: &str) -> Result<bool, DashboardError> {
        #[derive(serde::Deserialize)]
        struct Stopped {
            stopped: bool,
        }
        let answer = self.send(Method::POST, address, &job_path(id, "/stop"), token, None).await?;
        match answer.status {
            StatusCode::NOT_FOUND => Ok(false),
            status if status.is_success() => answer.json::<Stopped>().map(|s| s.stopped),
            _ => Err(answer.into_error()),
        }
    }

    /// GET /api/jobs/<id>/logs: the last `max_chars` characters of the logs (char boundary safe).
    pub async fn logs_tail(
        &self,
        address: &str,
        token: Option<&str>,
        id: &str,
        max_chars: usize,
    ) -> Result<String, DashboardError> {
        #[derive(serde::Deserialize)]
        struct Logs {
            logs: String,
        }
        let answer = self.send(Method::GET, address, &job_path(id, "/logs"), token, None).await?;
        if !answer.status.is_success() {
            return Err(answer.into_error());
        }
        let logs = answer.json::<Logs>()?.logs;
        Ok(tail(&logs, max_chars).to_string())
    }

    /// GET /api/serve/applications/?api_type=declarative: the applications Serve runs.
    pub async fn serve_applications(&self, address: &str, token: Option<&str>) -> Result<ServeDetails, DashboardError> {
        let answer = self.send(Method::GET, address, "/api/serve/applications/?api_type=declarative", token, None).await?;
        if !answer.status.is_success() {
            return Err(answer.into_error());
        }
        answer.json()
    }

    /// PUT /api/serve/applications/ with the whole declarative config (Serve deletes the
    /// applications it leaves out). Serve answers 200 with an empty body.
    pub async fn deploy_serve(&self, address: &str, token: Option<&str>, config: &serde_json::Value) -> Result<(), DashboardError> {
        let answer = self.send(Method::PUT, address, "/api/serve/applications/", token, Some(config)).await?;
        if answer.status.is_success() { Ok(()) } else { Err(answer.into_error()) }
    }

    /// GET /-/healthz on a Serve proxy (`address` is the proxy's `host:port`, not the
    /// dashboard's): whether it answered 200. No answer at all is an error.
    pub async fn proxy_healthy(&self, address: &str) -> Result<bool, DashboardError> {
        let answer = self.send(Method::GET, address, "/-/healthz", None, None).await?;
        Ok(answer.status == StatusCode::OK)
    }

    /// One request and its whole answer, within the timeout.
    async fn send(
        &self,
        method: Method,
        address: &str,
        path: &str,
        token: Option<&str>,
        json: Option<&serde_json::Value>,
    ) -> Result<Answer, DashboardError> {
        let uri: Uri = format!("{}{path}", base_url(address)?)
            .parse()
            .map_err(|e| DashboardError::BadAddress(format!("{address:?}: {e}")))?;
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            // Tokens come from Secrets, which often end in a newline.
            let mut value = HeaderValue::try_from(format!("Bearer {}", token.trim()))
                .map_err(|_| DashboardError::BadAddress("the token is not a valid HTTP header value".into()))?;
            value.set_sensitive(true);
            request = request.header(TOKEN_HEADER, value);
        }
        let body = match json {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(json.to_string())
            }
            None => Bytes::new(),
        };
        let request = request.body(Full::new(body)).map_err(|e| DashboardError::BadAddress(e.to_string()))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| DashboardError::Connect(chain(&e)))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_BODY).collect().await.map_err(|e| {
                if e.downcast_ref::<LengthLimitError>().is_some() {
                    DashboardError::Decode(format!("the answer is larger than {} MiB", MAX_BODY >> 20))
                } else {
                    DashboardError::Connect(chain(e.as_ref()))
                }
            })?;
            Ok(Answer { status, body: body.to_bytes() })
        };
        tokio::time::timeout(self.timeout, exchange).await.map_err(|_| DashboardError::Timeout)?
    }
}

/// A complete answer.
struct Answer {
    status: StatusCode,
    body: Bytes,
}

impl Answer {
    fn json<T: DeserializeOwned>(&self) -> Result<T, DashboardError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| DashboardError::Decode(format!("{e} in {:?}", last_line(&self.body))))
    }

    fn into_error(self) -> DashboardError {
        let (status, body) = (self.status.as_u16(), last_line(&self.body));
        match self.status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => DashboardError::Unauthorized { status, body },
            _ => DashboardError::Status { status, body },
        }
    }
}

/// `http://host:port` from a `status.dashboardURL` (`host:port`, `http://host:port`, either with
/// a trailing slash).
fn base_url(address: &str) -> Result<String, DashboardError> {
    let bad = |why: &str| Err(DashboardError::BadAddress(format!("{address:?}: {why}")));
    let trimmed = address.trim();
    let has_scheme = |scheme: &str| trimmed.get(..scheme.len()).is_some_and(|s| s.eq_ignore_ascii_case(scheme));
    let rest = if has_scheme("http://") {
        &trimmed["http://".len()..]
    } else if has_scheme("https://") {
        return bad("https is not supported: a Ray head's dashboard serves plain HTTP (host:port or http://host:port)");
    } else if trimmed.contains("://") {
        return bad("expected host:port or http://host:port");
    } else {
        trimmed
    };
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() {
        return bad("no host");
    }
    if authority.contains(['/', '?', '#', '@']) {
        return bad("expected host:port or http://host:port, with no path, query or user");
    }
    let authority = match authority.parse::<http::uri::Authority>() {
        Ok(authority) => authority,
        Err(e) => return bad(&e.to_string()),
    };
    // `Authority` takes any text after the colon; the connector would only fail later.
    let port = &authority.as_str()[authority.host().len()..];
    if port.strip_prefix(':').is_some_and(|port| port.parse::<u16>().is_err()) {
        return bad("the port is not a number from 0 to 65535");
    }
    Ok(format!("http://{authority}"))
}

/// `/api/jobs/<id><rest>`, with the id percent-encoded so that it stays one path segment.
fn job_path(id: &str, rest: &str) -> String {
    let mut path = String::from("/api/jobs/");
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            path.push(char::from(byte));
        } else {
            path.push_str(&format!("%{byte:02X}"));
        }
    }
    path.push_str(rest);
    path
}

/// Whether a failed submit failed because the submission id is taken: Ray answers 500 with a
/// traceback whose exception line is `ValueError: Job with submission_id … already exists. …`.
fn already_exists(status: StatusCode, body: &[u8]) -> bool {
    status == StatusCode::INTERNAL_SERVER_ERROR && last_line(body).contains("already exists")
}

/// The last non-empty line of an error answer, at most [`MAX_ERROR_LINE`] characters.
///
/// Lines of punctuation only do not count: when the dashboard passes on an error of its agent
/// (a taken submission id, for one), it wraps the agent's traceback as `RuntimeError(f"…
/// {traceback}.")`, so the very last line is a lone `.` after the exception line.
fn last_line(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
    let line = lines
        .clone()
        .rfind(|line| line.chars().any(char::is_alphanumeric))
        .or_else(|| lines.next_back())
        .unwrap_or_default();
    match line.char_indices().nth(MAX_ERROR_LINE) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}

/// The last `max_chars` characters of `text`.
fn tail(text: &str, max_chars: usize) -> &str {
    let Some(back) = max_chars.checked_sub(1) else { return "" };
    match text.char_indices().rev().nth(back) {
        Some((start, _)) => &text[start..],
        None => text,
    }
}

/// An error with its sources: hyper's own message is only "client error (Connect)".
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_kuberays_host_port_with_or_without_http_and_a_trailing_slash() {
        let head = "mycluster-head-svc.ns.svc.cluster.local:8265";
        let spellings = [head.to_string(), format!("http://{head}"), format!("{head}/"), format!("HTTP://{head}//"), format!(" {head}\n")];
        for address in spellings {
            assert_eq!(base_url(&address).unwrap(), format!("http://{head}"), "{address:?}");
        }
        assert_eq!(base_url("127.0.0.1:8265").unwrap(), "http://127.0.0.1:8265");
        assert_eq!(base_url("[::1]:8265").unwrap(), "http://[::1]:8265");
    }

    #[test]
    fn https_and_other_schemes_paths_and_empty_addresses_are_bad() {
        let error = base_url("https://head:8265").unwrap_err();
        assert!(matches!(&error, DashboardError::BadAddress(m) if m.contains("https is not supported")), "{error}");
        let bad = ["", "  ", "http://", "/", "ftp://head:8265", "head:8265/api", "http://head:8265/x/", "user@head:8265"];
        for address in bad.into_iter().chain(["head:port", "head:99999", "head:8265?x"]) {
            assert!(matches!(base_url(address), Err(DashboardError::BadAddress(_))), "{address:?} was accepted");
        }
    }

    #[test]
    fn job_ids_stay_one_path_segment() {
        assert_eq!(job_path("rayjob-sample-x7k2q", "/stop"), "/api/jobs/rayjob-sample-x7k2q/stop");
        assert_eq!(job_path("a/b c", ""), "/api/jobs/a%2Fb%20c");
    }

    #[test]
    fn a_500_ending_in_already_exists_is_a_taken_submission_id() {
        // As Ray 2.54 answers: the agent's traceback inside the dashboard's, then a lone ".".
        let body = b"Traceback (most recent call last):\n  File \"job_head.py\", line 130, in _raise_error\n    raise RuntimeError(f\"Request failed with status code {status}: {error_text}.\")\nRuntimeError: Request failed with status code 400: Traceback (most recent call last):\n  File \"job_manager.py\", line 560, in submit_job\n    raise ValueError(\nValueError: Job with submission_id job-hi-1 already exists. Please use a different submission_id.\n.\n";
        assert!(already_exists(StatusCode::INTERNAL_SERVER_ERROR, body));
        assert!(!already_exists(StatusCode::BAD_REQUEST, body), "only Ray's 500 means that");
        assert!(!already_exists(StatusCode::INTERNAL_SERVER_ERROR, b"500 Internal Server Error\n\nServer got itself in trouble"));
        assert!(!already_exists(StatusCode::INTERNAL_SERVER_ERROR, b"No available agent to submit job, please try again later."));
    }

    #[test]
    fn error_bodies_keep_their_last_non_empty_line() {
        let traceback = b"Traceback (most recent call last):\n  File \"x.py\", line 3\n\
            TypeError: JobSubmitRequest.__init__() got an unexpected keyword argument 'bogus'\n\n  \n";
        assert_eq!(last_line(traceback), "TypeError: JobSubmitRequest.__init__() got an unexpected keyword argument 'bogus'");
        assert_eq!(last_line(b"Job nope-123 does not exist"), "Job nope-123 does not exist");
        assert_eq!(last_line(b"RuntimeError: failed: Traceback\nValueError: taken\n.\n\n"), "ValueError: taken");
        assert_eq!(last_line(b"...\n"), "...", "punctuation is kept when there is nothing else");
        assert_eq!(last_line(b""), "");
        assert_eq!(last_line(b"\xff\xfe"), "\u{fffd}\u{fffd}", "bytes that are not UTF-8 do not lose the line");
    }

    #[test]
    fn long_error_lines_are_cut_at_a_char_boundary() {
        let line = "é".repeat(MAX_ERROR_LINE + 10);
        let kept = last_line(line.as_bytes());
        assert_eq!(kept.chars().count(), MAX_ERROR_LINE + 1);
        assert!(kept.ends_with('…'));
        let exact = "x".repeat(MAX_ERROR_LINE);
        assert_eq!(last_line(exact.as_bytes()), exact);
    }

    #[test]
    fn logs_tail_counts_characters_not_bytes() {
        let logs = "start\nhé🚀llo\n";
        assert_eq!(tail(logs, 5), "🚀llo\n");
        assert_eq!(tail(logs, 6), "é🚀llo\n");
        assert_eq!(tail(logs, 100), logs);
        assert_eq!(tail(logs, logs.chars().count()), logs);
        assert_eq!(tail(logs, 0), "");
        assert_eq!(tail("", 5), "");
    }

    #[test]
    fn only_transient_failures_are_retryable() {
        let status = |status| DashboardError::Status { status, body: String::new() };
        assert!(DashboardError::Timeout.retryable());
        assert!(DashboardError::Connect("refused".into()).retryable());
        assert!(status(500).retryable() && status(503).retryable());
        assert!(!status(400).retryable() && !status(404).retryable());
        assert!(!DashboardError::Unauthorized { status: 401, body: String::new() }.retryable());
        assert!(!DashboardError::BadAddress(String::new()).retryable());
        assert_eq!(status(500).label(), "status");
        assert_eq!(DashboardError::Timeout.label(), "timeout");
    }
}
