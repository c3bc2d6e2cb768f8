//! The local control plane: a real kube-apiserver, etcd, controller-manager, scheduler and KWOK nodes.
//!
//! Everything runs as real processes on free loopback ports inside one state directory:
//!
//! ```text
//! DIR/kubeconfig        admin kubeconfig (static token, our CA)
//! DIR/state.json        the running components, for `wasmray dev down`
//! DIR/pki/              CA, serving certificate, ServiceAccount key, token file
//! DIR/logs/<name>.log   each component's output
//! DIR/etcd/             etcd's data
//! ```
//!
//! Guarantees: `start` returns only when the apiserver is ready, every node is `Ready` (KWOK
//! runs), the scheduler and controller-manager serve, and the `default` ServiceAccount exists
//! (the controller-manager's controllers run). If any step fails, every component started so far
//! is stopped before the error is returned, and the error names the component and its log.

pub mod build;
mod certs;
pub mod cli;
pub mod kwok;
pub mod nodes;
mod process;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::{Deserialize, Serialize};

pub use build::{Binaries, KUBERNETES_VERSION, cache_root, ensure_binaries};
pub use nodes::{NodeGroup, NodeSet};
pub use process::Lifetime;
use process::Component;

/// Everything that can go wrong while building, starting or stopping the local control plane.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// No `go` on PATH.
    #[error(
        "the Go toolchain was not found on PATH: the local control plane is built from Go modules \
         (install Go 1.25 or newer and make sure `go` is on PATH)"
    )]
    GoMissing,
    /// `go build` failed.
    #[error("building the {module} Go module failed; see {}", log.display())]
    Build {
        /// Which of our Go modules.
        module: &'static str,
        /// Its build log.
        log: PathBuf,
    },
    /// A component could not bind its port.
    #[error("{component} could not listen on port {port}: the port is busy; see {}", log.display())]
    PortBusy {
        /// The component.
        component: String,
        /// The port it was given.
        port: u16,
        /// Its log.
        log: PathBuf,
    },
    /// A component exited.
    #[error("{component} exited ({status}) while {phase}; see {}", log.display())]
    ComponentDied {
        /// The component.
        component: String,
        /// Its exit status.
        status: String,
        /// What we were waiting for.
        phase: String,
        /// Its log.
        log: PathBuf,
    },
    /// A component did not become ready in time.
    #[error("{component} was not ready after {after:?}: {detail}; see {}", log.display())]
    NotReady {
        /// The component.
        component: String,
        /// How long we waited.
        after: Duration,
        /// The last thing we observed.
        detail: String,
        /// Its log.
        log: PathBuf,
    },
    /// No component of that name runs in this control plane.
    #[error("the control plane has no component {0:?}")]
    UnknownComponent(String),
    /// The node set file is invalid.
    #[error("invalid node set: {0}")]
    NodeSet(String),
    /// Certificate generation failed.
    #[error("generating the control plane's certificates failed: {0}")]
    Certificates(String),
    /// `DIR` already holds a running control plane.
    #[error("{} already holds a control plane (state.json exists); run `wasmray dev down --dir {}` first", dir.display(), dir.display())]
    AlreadyRunning {
        /// The state directory.
        dir: PathBuf,
    },
    /// `DIR` holds no control plane.
    #[error("{} holds no control plane (no state.json)", dir.display())]
    NotRunning {
        /// The state directory.
        dir: PathBuf,
    },
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A Kubernetes API call failed.
    #[error("{action}: {source}")]
    Kube {
        /// What we were doing.
        action: String,
        /// The cause.
        source: kube::Error,
    },
    /// The generated kubeconfig could not be loaded.
    #[error("loading {}: {detail}", path.display())]
    Kubeconfig {
        /// The kubeconfig.
        path: PathBuf,
        /// The cause.
        detail: String,
    },
}

impl DevError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), source }
    }

    fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let action = action.into();
        move |source| Self::Kube { action, source }
    }
}

/// How to start a control plane.
#[derive(Debug, Clone)]
pub struct Options {
    /// The state directory (created if missing; must not hold a running control plane).
    pub dir: PathBuf,
    /// The KWOK nodes to register.
    pub nodes: NodeSet,
    /// Where built binaries are cached.
    pub cache_root: PathBuf,
    /// Whether the components outlive this process.
    pub lifetime: Lifetime,
    /// kube-apiserver flags after ours, so that a fault test can change one (a later flag wins):
    /// `--watch-cache=false` makes watches read etcd, where compaction expires them.
    pub apiserver_flags: Vec<String>,
}

impl Options {
    /// Defaults: the default node set and cache, components that outlive this process.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into(), nodes: NodeSet::default(), cache_root: cache_root(), lifetime: Lifetime::Detached, apiserver_flags: Vec::new() }
    }
}

/// What `state.json` records about a running control plane.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// The apiserver's URL.
    pub server: String,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// Each running component.
    pub components: Vec<ComponentState>,
}

/// One running component.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComponentState {
    /// Its name.
    pub name: String,
    /// Its process id (also its process group id).
    pub pid: u32,
    /// Its log file.
    pub log: PathBuf,
}

/// A started control plane. Dropping it stops the components unless [`ControlPlane::detach`] was called.
#[derive(Debug)]
pub struct ControlPlane {
    dir: PathBuf,
    state: State,
    etcd_url: String,
    components: Vec<Component>,
    detached: bool,
}

const STATE_FILE: &str = "state.json";

impl ControlPlane {
    /// Builds the binaries if needed, starts every component and waits until all are ready.
    pub async fn start(options: Options) -> Result<Self, DevError> {
        let dir = &options.dir;
        std::fs::create_dir_all(dir).map_err(|e| DevError::io(dir, e))?;
        let dir = dir.canonicalize().map_err(|e| DevError::io(dir, e))?;
        if dir.join(STATE_FILE).exists() {
            return Err(DevError::AlreadyRunning { dir });
        }
        let binaries = ensure_binaries(&options.cache_root)?;
        let started = Instant::now();
        let mut plane = ControlPlane {
            state: State { server: String::new(), kubeconfig: dir.join("kubeconfig"), components: Vec::new() },
            dir,
            etcd_url: String::new(),
            components: Vec::new(),
            detached: false,
        };
        // On error `plane` is dropped here, which stops whatever was started.
        plane.boot(&binaries, &options).await?;
        tracing::info!(elapsed = ?started.elapsed(), server = %plane.state.server, "Control plane ready");
        Ok(plane)
    }

    async fn boot(&mut self, bin: &Binaries, options: &Options) -> Result<(), DevError> {
        let dir = self.dir.clone();
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| DevError::io(&logs, e))?;
        let pki = certs::generate(&dir.join("pki"))?;
        let lifetime = options.lifetime;

        let etcd_port = free_port()?;
        let etcd_peer_port = free_port()?;
        let etcd = Component::spawn(
            "etcd",
            &bin.path("etcd"),
            &[
                "--name=wasmray-dev".into(),
                format!("--data-dir={}", dir.join("etcd").display()),
                format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"),
                format!("--advertise-client-urls=http://127.0.0.1:{etcd_port}"),
                format!("--listen-peer-urls=http://127.0.0.1:{etcd_peer_port}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer_port}"),
                format!("--initial-cluster=wasmray-dev=http://127.0.0.1:{etcd_peer_port}"),
                // A throwaway store: durability buys nothing and fsync costs seconds per test.
                "--unsafe-no-fsync=true".into(),
                "--quota-backend-bytes=4294967296".into(),
                "--log-level=warn".into(),
            ],
            &logs,
            lifetime,
        )?;
        self.track(etcd);
        self.etcd_url = format!("http://127.0.0.1:{etcd_port}");
        self.wait_port("etcd", etcd_port, Duration::from_secs(30)).await?;

        let api_port = free_port()?;
        self.state.server = format!("https://127.0.0.1:{api_port}");
        let mut apiserver_flags = vec![
            format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={api_port}"),
            format!("--tls-cert-file={}", pki.serving_cert.display()),
            format!("--tls-private-key-file={}", pki.serving_key.display()),
            format!("--client-ca-file={}", pki.ca_file.display()),
            format!("--token-auth-file={}", pki.token_file.display()),
            "--authorization-mode=Node,RBAC".into(),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-account-key-file={}", pki.service_account_public_key.display()),
            format!("--service-account-signing-key-file={}", pki.service_account_key.display()),
            "--allow-privileged=true".into(),
            // As GKE and EKS do: a Pod that requests an extended resource (nvidia.com/gpu)
            // tolerates the taint of the nodes that have it.
            "--enable-admission-plugins=ExtendedResourceToleration".into(),
            "--profiling=false".into(),
            format!("--cert-dir={}", dir.join("pki").display()),
        ];
        apiserver_flags.extend(options.apiserver_flags.iter().cloned());
        let apiserver = Component::spawn("kube-apiserver", &bin.path("kube-apiserver"), &apiserver_flags, &logs, lifetime)?;
        self.track(apiserver);
        self.write_kubeconfig(&pki)?;
        let client = self.client().await?;
        self.wait_apiserver_ready(&client, Duration::from_secs(120)).await?;

        let kcm_port = free_port()?;
        let kcm = Component::spawn(
            "kube-controller-manager",
            &bin.path("kube-controller-manager"),
            &[
                format!("--kubeconfig={}", self.state.kubeconfig.display()),
                format!("--authentication-kubeconfig={}", self.state.kubeconfig.display()),
                format!("--authorization-kubeconfig={}", self.state.kubeconfig.display()),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={kcm_port}"),
                format!("--cert-dir={}", dir.join("pki").join("kcm").display()),
                "--leader-elect=false".into(),
                "--controllers=*".into(),
                format!("--service-account-private-key-file={}", pki.service_account_key.display()),
                format!("--root-ca-file={}", pki.ca_file.display()),
                "--use-service-account-credentials=false".into(),
                // Tests delete namespaces and Jobs constantly; the default 20 workers are idle
                // most of the time and only cost memory.
                "--concurrent-gc-syncs=10".into(),
            ],
            &logs,
            lifetime,
        )?;
        self.track(kcm);

        let scheduler_port = free_port()?;
        let scheduler = Component::spawn(
            "kube-scheduler",
            &bin.path("kube-scheduler"),
            &[
                format!("--kubeconfig={}", self.state.kubeconfig.display()),
                format!("--authentication-kubeconfig={}", self.state.kubeconfig.display()),
                format!("--authorization-kubeconfig={}", self.state.kubeconfig.display()),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={scheduler_port}"),
                format!("--cert-dir={}", dir.join("pki").join("scheduler").display()),
                "--leader-elect=false".into(),
            ],
            &logs,
            lifetime,
        )?;
        self.track(scheduler);

        let stages = dir.join("kwok-stages.yaml");
        std::fs::write(&stages, include_str!("kwok-stages.yaml")).map_err(|e| DevError::io(&stages, e))?;
        let kwok_port = free_port()?;
        let kwok = Component::spawn(
            "kwok",
            &bin.path("kwok"),
            &[
                format!("--kubeconfig={}", self.state.kubeconfig.display()),
                format!("--config={}", stages.display()),
                "--manage-all-nodes=false".into(),
                format!(
                    "--manage-nodes-with-annotation-selector={}={}",
                    nodes::KWOK_NODE_ANNOTATION.0,
                    nodes::KWOK_NODE_ANNOTATION.1
                ),
                "--node-lease-duration-seconds=40".into(),
                "--cidr=10.244.0.0/16".into(),
                "--node-ip=10.96.0.1".into(),
                format!("--server-address=127.0.0.1:{kwok_port}"),
            ],
            &logs,
            lifetime,
        )?;
        self.track(kwok);

        self.wait_port("kube-controller-manager", kcm_port, Duration::from_secs(60)).await?;
        self.wait_port("kube-scheduler", scheduler_port, Duration::from_secs(60)).await?;
        self.wait_port("kwok", kwok_port, Duration::from_secs(60)).await?;
        self.create_nodes(&client, &options.nodes).await?;
        self.wait_default_service_account(&client, Duration::from_secs(60)).await?;
        self.write_state()?;
        Ok(())
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        &self.state.kubeconfig
    }

    /// What `state.json` records.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// A client authenticated as cluster admin.
    pub async fn client(&self) -> Result<kube::Client, DevError> {
        client_for(&self.state.kubeconfig).await
    }

    /// etcd's client URL (plain HTTP on loopback): its v3 JSON gateway lets a fault test read the
    /// store's revision and compact it (`POST /v3/kv/compaction`).
    pub fn etcd_url(&self) -> &str {
        &self.etcd_url
    }

    /// The process id of a running component (`etcd`, `kube-apiserver`, …), for fault tests
    /// that signal it (SIGSTOP pauses etcd).
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.state.components.iter().find(|c| c.name == name).map(|c| c.pid)
    }

    /// Stops one component and starts it again with the same flags, as an apiserver restart
    /// in production would; waits until the apiserver answers again.
    ///
    /// # Errors
    ///
    /// If there is no such component, or it does not come back.
    pub async fn restart(&mut self, name: &str) -> Result<(), DevError> {
        let component = self
            .components
            .iter_mut()
            .find(|c| c.name() == name)
            .ok_or_else(|| DevError::UnknownComponent(name.to_string()))?;
        component.restart()?;
        let state = component.state();
        if let Some(entry) = self.state.components.iter_mut().find(|c| c.name == name) {
            *entry = state;
        }
        self.write_state()?;
        let client = self.client().await?;
        self.wait_apiserver_ready(&client, Duration::from_secs(120)).await
    }

    /// Leaves the components running after this value is dropped (`wasmray dev up`).
    pub fn detach(mut self) {
        self.detached = true;
    }

    /// Stops every component and removes the state directory.
    pub fn stop(mut self) {
        self.stop_components();
        let _ = std::fs::remove_dir_all(&self.dir);
        self.detached = true;
    }

    fn stop_components(&mut self) {
        // Reverse start order: clients of the apiserver first, etcd last.
        for component in self.components.iter_mut().rev() {
            component.stop();
        }
    }

    fn track(&mut self, component: Component) {
        self.state.components.push(component.state());
        self.components.push(component);
    }

    fn component(&mut self, name: &str) -> &mut Component {
        self.components.iter_mut().find(|c| c.name() == name).expect("components are tracked by name")
    }

    fn write_kubeconfig(&self, pki: &certs::Credentials) -> Result<(), DevError> {
        use base64::Engine as _;
        let ca = base64::engine::general_purpose::STANDARD.encode(&pki.ca_pem);
        let body = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: wasmray-dev\n  cluster:\n    server: {server}\n    \
             certificate-authority-data: {ca}\nusers:\n- name: wasmray-admin\n  user:\n    token: {token}\n\
             contexts:\n- name: wasmray-dev\n  context:\n    cluster: wasmray-dev\n    user: wasmray-admin\n    \
             namespace: default\ncurrent-context: wasmray-dev\n",
            server = self.state.server,
            token = pki.admin_token,
        );
        let path = &self.state.kubeconfig;
        std::fs::write(path, body).map_err(|e| DevError::io(path, e))
    }

    fn write_state(&self) -> Result<(), DevError> {
        let path = self.dir.join(STATE_FILE);
        let body = serde_json::to_string_pretty(&self.state).expect("state serialises");
        std::fs::write(&path, body).map_err(|e| DevError::io(&path, e))
    }

    async fn wait_port(&mut self, name: &str, port: u16, timeout: Duration) -> Result<(), DevError> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + timeout;
        loop {
            self.component(name).check_alive(port, "starting")?;
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.component(name).not_ready(timeout, format!("nothing listens on port {port}")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_apiserver_ready(&mut self, client: &kube::Client, timeout: Duration) -> Result<(), DevError> {
        let port = self.state.server.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let deadline = Instant::now() + timeout;
        let mut last;
        loop {
            self.component("etcd").check_alive(0, "the apiserver started")?;
            self.component("kube-apiserver").check_alive(port, "becoming ready")?;
            let request = http::Request::get("/readyz").body(Vec::new()).expect("a static request is valid");
            match client.request_text(request).await {
                Ok(body) if body.trim() == "ok" => return Ok(()),
                Ok(body) => last = body,
                Err(e) => last = e.to_string(),
            }
            if Instant::now() > deadline {
                return Err(self.component("kube-apiserver").not_ready(timeout, format!("/readyz: {last}")));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn create_nodes(&mut self, client: &kube::Client, set: &NodeSet) -> Result<(), DevError> {
        let api: Api<Node> = Api::all(client.clone());
        let wanted = set.to_nodes();
        for node in &wanted {
            let name = node.metadata.name.clone().unwrap_or_default();
            api.create(&PostParams::default(), node).await.map_err(DevError::kube(format!("creating node {name}")))?;
        }
        let timeout = Duration::from_secs(60);
        let deadline = Instant::now() + timeout;
        loop {
            self.component("kwok").check_alive(0, "nodes were becoming Ready")?;
            let listed = api.list(&Default::default()).await.map_err(DevError::kube("listing nodes"))?;
            let ready = listed.items.iter().filter(|n| node_is_ready(n)).count();
            if ready >= wanted.len() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.component("kwok").not_ready(timeout, format!("{ready} of {} nodes Ready", wanted.len())));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn wait_default_service_account(&mut self, client: &kube::Client, timeout: Duration) -> Result<(), DevError> {
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
        let deadline = Instant::now() + timeout;
        loop {
            self.component("kube-controller-manager").check_alive(0, "its controllers were starting")?;
            if api.get_opt("default").await.map_err(DevError::kube("reading the default ServiceAccount"))?.is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self
                    .component("kube-controller-manager")
                    .not_ready(timeout, "the default ServiceAccount was never created".into()));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if !self.detached {
            self.stop_components();
        }
    }
}

/// Stops the control plane recorded in `dir/state.json` and removes `dir` (`wasmray dev down`).
pub fn stop_dir(dir: &Path) -> Result<(), DevError> {
    let path = dir.join(STATE_FILE);
    let body = match std::fs::read_to_string(&path) {
        Ok(body) => body,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DevError::NotRunning { dir: dir.to_path_buf() });
        }
        Err(e) => return Err(DevError::io(&path, e)),
    };
    let state: State = serde_json::from_str(&body).map_err(|e| DevError::io(&path, std::io::Error::other(e)))?;
    for component in state.components.iter().rev() {
        process::stop_group(component.pid);
    }
    std::fs::remove_dir_all(dir).map_err(|e| DevError::io(dir, e))
}

/// A client for a kubeconfig file.
pub async fn client_for(kubeconfig: &Path) -> Result<kube::Client, DevError> {
    let fail = |detail: String| DevError::Kubeconfig { path: kubeconfig.to_path_buf(), detail };
    let kc = Kubeconfig::read_from(kubeconfig).map_err(|e| fail(e.to_string()))?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.map_err(|e| fail(e.to_string()))?;
    kube::Client::try_from(config).map_err(|e| fail(e.to_string()))
}

fn node_is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A port that was free a moment ago. Components get it on their command line; if another
/// process takes it first, the component's exit is reported as [`DevError::PortBusy`].
fn free_port() -> Result<u16, DevError> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(|e| DevError::io(Path::new("127.0.0.1:0"), e))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| DevError::io(Path::new("127.0.0.1:0"), e))
}
