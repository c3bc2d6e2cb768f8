//! A real Ray head for end-to-end tests: `ray start --head --block` from the venv that tests/run installs, on free ports.
//!
//! ```text
//! let head = RayHead::start().await?;
//! let dashboard = wasmray::ray::dashboard::Dashboard::new(Duration::from_secs(10));
//! dashboard.submit(&head.dashboard_address(), None, &json!({"entrypoint": "echo hi"})).await?;
//!
//! let serving = RayHead::start_serving().await?;   // Serve up on this head's own proxy port
//! let apps = serving.serve_applications().await?;  // GET /api/serve/applications/
//! ```
//!
//! Guarantees:
//! - [`RayHead::start`] returns once the GCS, the dashboard and the dashboard agent (which runs
//!   jobs) all answer, and the dashboard is this head's own: its session name is the one in this
//!   head's temp dir (a busy dashboard port is not fatal to `ray start`, so another head could
//!   answer on it; the start is then retried on new ports).
//! - Every port of a head differs from every other head's, so heads run side by side in parallel
//!   tests. Each costs about 1 GiB of memory: keep them few.
//! - Every head has `tests/fixtures/serve` on its `PYTHONPATH`, so a Serve config imports the
//!   fixture apps (`hello:app`, `broken:app`) with no `runtime_env`.
//! - [`RayHead::start_serving`] returns once Serve runs on the head with its proxy on this head's
//!   own [`RayHead::serve_port`]. Ray has no start-time setting for Serve's port, and
//!   `http_options` only counts when Serve starts (a later PUT's are ignored silently), so the
//!   head starts Serve itself with an empty application list: a Serve config then PUT by the
//!   operator, the same for two clusters on two heads, never makes them contend for port 8000.
//!   A head whose Serve keeps refusing to start is replaced by a fresh one, up to three in all;
//!   the error then carries each one's dashboard and Serve log tails.
//! - Dropping a head stops all of its processes (SIGTERM to its process group, SIGKILL after
//!   10 s) and removes its temp dir.
//! - A head also dies with this process, however it ends (a head in a `static` is never
//!   dropped): a watchdog in the head's process group reads a pipe that only this process
//!   writes to, and kills the group when the pipe closes. A parent-death signal on `ray start`
//!   would not do: Ray passes one on to the processes it starts itself, but the raylet's dashboard
//!   and runtime-env agents outlived a killed `ray start` by over a minute. The temp dir of such a head
//!   is removed by the first start in a later run.
//!
//! Assumptions: `$WASMRAY_RAY_VENV` is a venv with `tests/requirements-ray.txt` installed
//! (tests/run makes it). Nothing here runs `ray stop`, which would stop every head on the machine.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// The environment variable naming the venv with Ray installed.
pub const VENV_ENV: &str = "WASMRAY_RAY_VENV";

/// How long a head may take to be ready; it usually takes 5–7 s.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long Serve may refuse (or be slow) to start on a head that is otherwise ready: on a
/// loaded 2-core machine a start has failed twice in a row before succeeding, and with eight
/// heads starting at once on a fresh machine the PUTs kept timing out for over 180 s.
const SERVE_REFUSALS_TIMEOUT: Duration = Duration::from_secs(150);
/// Fresh heads tried for one serving head: once, in CI, a head's Serve answered every PUT for
/// 300 s with aiohttp's bare 500 ("Server got itself in trouble"), so waiting longer on the
/// same head is not the cure; a new head starts from nothing.
const SERVING_ATTEMPTS: usize = 3;
/// Starts retried when another head answered on the ports picked for this one.
const ATTEMPTS: usize = 3;
/// How long the PUT that starts Serve may take; it takes about 3 s.
const SERVE_START_TIMEOUT: Duration = Duration::from_secs(60);
/// The folder of the Serve apps of the tests, on every head's `PYTHONPATH`.
pub const SERVE_APPS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/serve");
/// Temp dirs are `<tmp>/wasmray-ray-<pid>-<n>`; short, because Ray's Unix sockets live inside
/// and a socket path may not exceed 107 bytes.
const DIR_PREFIX: &str = "wasmray-ray-";

/// A running Ray head, stopped on drop.
pub struct RayHead {
    child: Option<Child>,
    watchdog: Option<Child>,
    ports: Ports,
    token: Option<String>,
    dir: PathBuf,
}

/// Every port a head binds that Ray would otherwise take from a fixed default.
#[derive(Clone, Copy, Debug)]
struct Ports {
    gcs: u16,
    dashboard: u16,
    agent_listen: u16,
    agent_grpc: u16,
    client_server: u16,
    runtime_env_agent: u16,
    metrics_export: u16,
    dashboard_metrics: u16,
    autoscaler_metrics: u16,
    serve: u16,
    serve_grpc: u16,
}

impl RayHead {
    /// A head without authentication.
    pub async fn start() -> anyhow::Result<RayHead> {
        Self::start_inner(None).await
    }

    /// A head with token authentication (`RAY_AUTH_MODE=token`, `RAY_AUTH_TOKEN=token`): every
    /// dashboard request but the health checks needs `x-ray-authorization: Bearer <token>`.
    pub async fn start_with_token(token: &str) -> anyhow::Result<RayHead> {
        Self::start_inner(Some(token.to_string())).await
    }

    /// A head with Ray Serve running, its HTTP proxy on [`RayHead::serve_port`] of 127.0.0.1 and
    /// no application yet.
    pub async fn start_serving() -> anyhow::Result<RayHead> {
        let mut refusals = Vec::new();
        for _ in 0..SERVING_ATTEMPTS {
            let head = Self::start().await?;
            match head.start_serve().await {
                Ok(()) => return Ok(head),
                // Dropping `head` stops it before the next one starts.
                Err(refusal) => refusals.push(format!("{refusal:#}\n{}", head.serve_log_tail())),
            }
        }
        anyhow::bail!("Serve did not start on any of {SERVING_ATTEMPTS} fresh heads:\n{}", refusals.join("\n\n"))
    }

    /// The venv with Ray installed (`$WASMRAY_RAY_VENV`).
    ///
    /// # Panics
    /// When the variable is not set: tests/run sets it after installing the venv.
    pub fn venv() -> PathBuf {
        std::env::var_os(VENV_ENV).map(PathBuf::from).unwrap_or_else(|| {
            panic!("{VENV_ENV} is not set: run the tests through tests/run, which installs Ray into a venv and sets it")
        })
    }

    /// The dashboard's address as KubeRay writes it in `status.dashboardURL`: `127.0.0.1:<port>`,
    /// no scheme.
    pub fn dashboard_address(&self) -> String {
        format!("127.0.0.1:{}", self.ports.dashboard)
    }

    /// The port of this head's Serve HTTP proxy (once [`RayHead::start_serving`] started it).
    pub fn serve_port(&self) -> u16 {
        self.ports.serve
    }

    /// The Serve proxy's address, `127.0.0.1:<serve port>`, where KubeRay would dial the head
    /// Pod's `<pod IP>:8000`.
    pub fn serve_address(&self) -> String {
        format!("127.0.0.1:{}", self.ports.serve)
    }

    /// Serve's own account of its applications (`GET /api/serve/applications/?api_type=declarative`):
    /// `applications.<name>.status`, `.message`, `.deployed_app_config`, and `target_capacity`.
    pub async fn serve_applications(&self) -> anyhow::Result<serde_json::Value> {
        let dashboard = SocketAddr::from(([127, 0, 0, 1], self.ports.dashboard));
        let (status, body) = get(dashboard, "/api/serve/applications/?api_type=declarative", self.token.as_deref())
            .await
            .map_err(anyhow::Error::msg)?;
        anyhow::ensure!(status == 200, "GET /api/serve/applications/ answered {status}: {}", body.trim());
        serde_json::from_str(&body).with_context(|| format!("Serve's applications as JSON: {body}"))
    }

    /// The answer of this head's Serve proxy to `GET path` (status and body), within 5 s: a
    /// route without a healthy replica would never answer.
    pub async fn ask_serve(&self, path: &str) -> anyhow::Result<(u16, String)> {
        get(SocketAddr::from(([127, 0, 0, 1], self.ports.serve)), path, None).await.map_err(anyhow::Error::msg)
    }

    /// Starts Serve with this head's HTTP and gRPC ports and no applications.
    async fn start_serve(&self) -> anyhow::Result<()> {
        let dashboard = SocketAddr::from(([127, 0, 0, 1], self.ports.dashboard));
        let body = serde_json::json!({
            "http_options": { "host": "127.0.0.1", "port": self.ports.serve },
            "grpc_options": { "port": self.ports.serve_grpc },
            "applications": [],
        });
        // Right after the dashboard answers, its Serve module's own `ray.init()` can still fail
        // (a 500 whose log says `ConnectionError`), and on a loaded machine Serve's controller
        // may kill a proxy that was slow to start (a 500 saying `ActorDiedError`) or the PUT may
        // outlast its timeout: asked again for a while.
        let deadline = Instant::now() + SERVE_REFUSALS_TIMEOUT;
        loop {
            let answer = put(dashboard, "/api/serve/applications/", &body.to_string(), self.token.as_deref()).await;
            let why = match answer {
                Ok((200, _)) => break,
                Ok((status, answer)) if status >= 500 => format!("answered {status}: {}", answer.trim()),
                Ok((status, answer)) => anyhow::bail!("starting Serve: PUT /api/serve/applications/ answered {status}: {}", answer.trim()),
                Err(error) => format!("{error:#}"),
            };
            anyhow::ensure!(Instant::now() < deadline, "starting Serve: PUT /api/serve/applications/ {why}");
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let started = self.serve_applications().await?;
        anyhow::ensure!(
            started["http_options"]["port"] == self.ports.serve,
            "Serve runs, but not on this head's port {}: {started}",
            self.ports.serve
        );
        Ok(())
    }

    /// The token the head was started with, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Submits a job as KubeRay's submitter Pod does, with the `ray job submit` CLI (`--no-wait`):
    /// `sh -c <entrypoint>` under `submission_id`, with the head's token when it has one.
    pub async fn submit_cli(&self, submission_id: &str, entrypoint: &str) -> anyhow::Result<()> {
        let venv = Self::venv();
        let mut command = tokio::process::Command::new(venv.join("bin/ray"));
        command
            .args(["job", "submit", "--address", &format!("http://{}", self.dashboard_address())])
            .args(["--submission-id", submission_id, "--no-wait", "--", "sh", "-c", entrypoint])
            .env("PATH", path_with(&venv))
            .env_remove("RAY_ADDRESS")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(token) = &self.token {
            command.env("RAY_AUTH_MODE", "token").env("RAY_AUTH_TOKEN", token);
        }
        let output = crate::within(Duration::from_secs(60), command.output())
            .await
            .context("ray job submit")?
            .context("running ray job submit")?;
        if !output.status.success() {
            anyhow::bail!(
                "ray job submit {submission_id} failed ({}):\n{}\n{}",
                output.status,
                last_lines(&String::from_utf8_lossy(&output.stdout), 20),
                last_lines(&String::from_utf8_lossy(&output.stderr), 20),
            );
        }
        Ok(())
    }

    async fn start_inner(token: Option<String>) -> anyhow::Result<RayHead> {
        remove_stale_dirs();
        let started = Instant::now();
        let mut mismatches = Vec::new();
        for _ in 0..ATTEMPTS {
            let mut head = Self::spawn(token.clone())?;
            match head.wait_ready(started + READY_TIMEOUT).await? {
                Ready::Yes => return Ok(head),
                // Dropping `head` stops it before the next attempt.
                Ready::SomeoneElses(session) => mismatches.push(format!("port {} served {session}", head.ports.dashboard)),
            }
        }
        anyhow::bail!("another Ray head answered on the dashboard port of every attempt: {}", mismatches.join("; "))
    }

    fn spawn(token: Option<String>) -> anyhow::Result<RayHead> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let venv = Self::venv();
        let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let ports = Ports::pick()?;
        let log = std::fs::File::create(dir.join("ray-start.log"))?;
        let mut command = Command::new(venv.join("bin/ray"));
        command
            .args(["start", "--head", "--block", "--dashboard-host=127.0.0.1", "--num-cpus=1"])
            .args(["--object-store-memory=100000000", "--disable-usage-stats"])
            .arg(format!("--temp-dir={}", dir.join("ray").display()))
            .arg(format!("--port={}", ports.gcs))
            .arg(format!("--dashboard-port={}", ports.dashboard))
            .arg(format!("--dashboard-agent-listen-port={}", ports.agent_listen))
            .arg(format!("--dashboard-agent-grpc-port={}", ports.agent_grpc))
            .arg(format!("--ray-client-server-port={}", ports.client_server))
            .arg(format!("--runtime-env-agent-port={}", ports.runtime_env_agent))
            .arg(format!("--metrics-export-port={}", ports.metrics_export))
            .env("DASHBOARD_METRIC_PORT", ports.dashboard_metrics.to_string())
            .env("AUTOSCALER_METRIC_PORT", ports.autoscaler_metrics.to_string())
            // Serve configs import the fixture apps by module name (`hello:app`).
            .env("PYTHONPATH", SERVE_APPS_DIR)
            // Job entrypoints run with this environment: `python` must be the venv's.
            .env("PATH", path_with(&venv))
            .env_remove("RAY_ADDRESS")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        match &token {
            Some(token) => command.env("RAY_AUTH_MODE", "token").env("RAY_AUTH_TOKEN", token),
            None => command.env_remove("RAY_AUTH_MODE").env_remove("RAY_AUTH_TOKEN"),
        };
        // Its own process group, so that one signal reaches every process of the head.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().context("starting ray start --head")?;
        // If `ray start` has failed already, the group is gone and this fails; `wait_ready`
        // then reports the exit with its log.
        let watchdog = watchdog(child.id()).ok();
        Ok(RayHead { child: Some(child), watchdog, ports, token, dir })
    }

    /// Polls the three signs of a usable head until `deadline`.
    async fn wait_ready(&mut self, deadline: Instant) -> anyhow::Result<Ready> {
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                anyhow::bail!("ray start exited ({status}) before the head was ready\n{}", self.log_tail());
            }
            let why = match self.check().await {
                Ok(ready) => return Ok(ready),
                Err(why) => why,
            };
            if Instant::now() >= deadline {
                anyhow::bail!("the Ray head was not ready after {READY_TIMEOUT:?}: {why}\n{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Ready, someone else's, or why not yet.
    async fn check(&self) -> Result<Ready, String> {
        let dashboard = SocketAddr::from(([127, 0, 0, 1], self.ports.dashboard));
        let agent = SocketAddr::from(([127, 0, 0, 1], self.ports.agent_listen));
        expect_success(get(dashboard, "/api/gcs_healthz", None).await, "the GCS health check")?;
        // `/api/version` can answer before the agent is up, and jobs need the agent.
        expect_success(get(agent, "/api/local_raylet_healthz", None).await, "the dashboard agent's health check")?;
        let (status, body) = get(dashboard, "/api/version", self.token.as_deref()).await?;
        if status != 200 {
            return Err(format!("/api/version answered {status}: {}", body.trim()));
        }
        let session = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["session_name"].as_str().map(str::to_string))
            .ok_or_else(|| format!("/api/version answered {body:?}"))?;
        let ours = std::fs::read_link(self.dir.join("ray/session_latest"))
            .ok()
            .and_then(|target| target.file_name().map(|n| n.to_string_lossy().into_owned()))
            .ok_or("no session_latest yet")?;
        Ok(if session == ours { Ready::Yes } else { Ready::SomeoneElses(session) })
    }

    /// The last lines of `ray start`'s output and of the dashboard's and its agent's logs.
    fn log_tail(&self) -> String {
        let logs = self.dir.join("ray/session_latest/logs");
        [self.dir.join("ray-start.log"), logs.join("dashboard.log"), logs.join("dashboard_agent.log")]
            .iter()
            .filter_map(|path| Some(format!("--- {}\n{}", path.display(), last_lines(&std::fs::read_to_string(path).ok()?, 25))))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The last lines of the dashboard's log (where its Serve module logs a failed PUT) and of
    /// Serve's controller and proxy logs.
    fn serve_log_tail(&self) -> String {
        let logs = self.dir.join("ray/session_latest/logs");
        let serve_logs = std::fs::read_dir(logs.join("serve"))
            .map(|entries| entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "log")).collect::<Vec<_>>())
            .unwrap_or_default();
        std::iter::once(logs.join("dashboard.log"))
            .chain(serve_logs)
            .filter_map(|path| Some(format!("--- {}\n{}", path.display(), last_lines(&std::fs::read_to_string(&path).ok()?, 40))))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for RayHead {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // `ray start --block` stops the processes it started on SIGTERM (in about 4 s); the
            // whole group gets it in case one of them is slow.
            if let Ok(pid) = i32::try_from(child.id()) {
                let group = Pid::from_raw(pid);
                let _ = killpg(group, Signal::SIGTERM);
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(100));
                }
                // Ray's own processes may outlive `ray start` by a moment; none may survive.
                let _ = killpg(group, Signal::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // It got the signals with the group.
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

enum Ready {
    Yes,
    /// The dashboard port answered with another head's session.
    SomeoneElses(String),
}

impl Ports {
    /// Eleven distinct free ports, none handed out before in this process: listeners are held
    /// until all are picked, and ports already given to another head here are skipped.
    fn pick() -> anyhow::Result<Ports> {
        static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
        let mut given = GIVEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let given = given.get_or_insert_with(HashSet::new);
        let mut listeners = Vec::new();
        let mut ports = Vec::new();
        while ports.len() < 11 {
            let listener = TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
            let port = listener.local_addr()?.port();
            if given.insert(port) {
                ports.push(port);
            }
            listeners.push(listener);
        }
        let mut ports = ports.into_iter();
        let mut port = || ports.next().expect("eleven ports were picked");
        Ok(Ports {
            gcs: port(),
            dashboard: port(),
            agent_listen: port(),
            agent_grpc: port(),
            client_server: port(),
            runtime_env_agent: port(),
            metrics_export: port(),
            dashboard_metrics: port(),
            autoscaler_metrics: port(),
            serve: port(),
            serve_grpc: port(),
        })
    }
}

/// A shell in the process group `group` that SIGKILLs the group once its stdin, a pipe whose
/// write end only this process holds (Rust opens pipes close-on-exec), reaches end of file: when
/// this process ends, however it ends.
fn watchdog(group: u32) -> anyhow::Result<Child> {
    let mut command = Command::new("sh");
    command.args(["-c", "while read -r _; do :; done; kill -9 0"]);
    command.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut command, i32::try_from(group)?);
    Ok(command.spawn()?)
}

/// `$PATH` with the venv's `bin` first.
fn path_with(venv: &Path) -> std::ffi::OsString {
    let mut paths = vec![venv.join("bin")];
    paths.extend(std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default());
    std::env::join_paths(paths).expect("PATH entries without ':'")
}

/// Status and body of `GET path`; an error says what failed. HTTP/1.0, so the answer ends with
/// the connection.
async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Result<(u16, String), String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let auth = token.map(|t| format!("x-ray-authorization: Bearer {t}\r\n")).unwrap_or_default();
        stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}\r\n").as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        std::io::Result::Ok(response)
    };
    let response = match tokio::time::timeout(Duration::from_secs(5), exchange).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => return Err(format!("GET {addr}{path}: {e}")),
        Err(_) => return Err(format!("GET {addr}{path}: no answer in 5 s")),
    };
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    let status = status.ok_or_else(|| format!("GET {addr}{path}: no status line"))?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((response.as_str(), ""));
    // Serve's proxy (uvicorn) answers in chunks even to HTTP/1.0.
    let chunked = head.lines().any(|l| l.to_ascii_lowercase().replace(' ', "") == "transfer-encoding:chunked");
    Ok((status, if chunked { dechunk(body) } else { body.to_string() }))
}

/// The payload of a chunked body: each chunk is its hex size, CRLF, the bytes, CRLF; size 0 ends.
fn dechunk(body: &str) -> String {
    let mut payload = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.split(';').next().unwrap_or_default().trim(), 16).unwrap_or(0);
        let (Some(chunk), Some(next)) = (after.get(..size), after.get(size..)) else { break };
        if size == 0 {
            break;
        }
        payload.push_str(chunk);
        rest = next.strip_prefix("\r\n").unwrap_or(next);
    }
    payload
}

/// Status and body of `PUT path` with a JSON `body`, as KubeRay's dashboard client sends it (no
/// browser-like headers, which the dashboard refuses).
async fn put(addr: SocketAddr, path: &str, body: &str, token: Option<&str>) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let auth = token.map(|t| format!("x-ray-authorization: Bearer {t}\r\n")).unwrap_or_default();
        let head = format!(
            "PUT {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        std::io::Result::Ok(response)
    };
    let response = crate::within(SERVE_START_TIMEOUT, exchange).await.with_context(|| format!("PUT {addr}{path}"))??;
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    let status = status.with_context(|| format!("PUT {addr}{path}: no status line in {response:?}"))?;
    let answer = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, answer))
}

fn expect_success(answer: Result<(u16, String), String>, what: &str) -> Result<(), String> {
    match answer? {
        (200, body) if body.trim() == "success" => Ok(()),
        (status, body) => Err(format!("{what} answered {status}: {}", body.trim())),
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Removes the temp dirs of heads whose test process is gone (heads in a `static` are never
/// dropped; their processes die with the test process, their dirs stay).
fn remove_stale_dirs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)).and_then(|rest| rest.split('-').next()) else {
                continue;
            };
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_chunked_answer_is_read_as_its_payload() {
        assert_eq!(super::dechunk("8\r\nhello v1\r\n0\r\n\r\n"), "hello v1");
        assert_eq!(super::dechunk("3\r\nhel\r\n5;ext=1\r\nlo v1\r\n0\r\n\r\n"), "hello v1");
        assert_eq!(super::dechunk(""), "");
    }
}
