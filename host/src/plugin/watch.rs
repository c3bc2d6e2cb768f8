//! Keeps the plugin registry in line with its configuration while running: one loop over a
//! ConfigMap watch and a file poll, with an Event for every version loaded, rejected or removed.
//!
//! # Expected flow
//!
//! 1. Something may have changed: a ConfigMap in the operator's namespace was added, changed or
//!    deleted, or a poll interval passed (files have no watch).
//! 2. [`PluginWatch`] looks at everything the registry is loaded from and reduces it to a
//!    [`View`]: the configuration (the built-ins overlaid with the file or the ConfigMap key
//!    [`CONFIG_MAP_KEY`]), the bytes of every ConfigMap key it names, and a fingerprint of every
//!    file it names. ConfigMaps are read from the watch's cache; files are only `stat`ed.
//! 3. [`classify`] compares the view with the one last acted on: nothing to do; wait (a file
//!    changed since the previous look and may still be being written); reload; or keep serving
//!    because the configuration itself cannot be read.
//! 4. A reload goes through [`Registry::reload`] (compiled and checked off the hot path, then
//!    swapped atomically); every plugin loaded, rejected or removed gets an Event and a log line.
//!
//! # Events
//!
//! | type | reason | when |
//! | --- | --- | --- |
//! | Normal | `PluginLoaded` | a new version serves (not for built-ins, which cannot change) |
//! | Warning | `PluginRejected` | a version was refused; the message names the plugin, the sha256 of the refused version and why, and what keeps serving |
//! | Normal | `PluginRemoved` | a plugin left the configuration |
//! | Warning | `PluginConfigInvalid` | the configuration cannot be read; every plugin keeps serving |
//!
//! An Event regards the ConfigMap that supplied the plugin's bytes; failing that, the plugins
//! ConfigMap (it is what named the plugin); failing that (a configuration file), the operator's
//! Namespace, whose Events Kubernetes keeps in `default` as for every cluster-scoped object.
//!
//! # Caveats
//!
//! - The operator needs `list` and `watch` on ConfigMaps in its own namespace and `create` on
//!   `events.k8s.io` Events there (and in `default` for file-sourced plugins).
//! - ConfigMap sources are looked up in the operator's namespace only, and the watch caches
//!   every ConfigMap of that namespace: keep the operator's namespace to itself.
//! - A ConfigMap holds at most 1 MiB; the registry inflates gzip-compressed bytes, so a plugin
//!   of a few MiB fits once compressed (`gzip -9 < plugin.wasm`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::{StreamExt as _, stream::BoxStream};
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, Resource as _};

use crate::controller::apply::Writer;

use super::config::{CONFIG_MAP_KEY, ConfigError, PluginSource, PluginSpec, RegistryConfig};
use super::registry::{ConfigMapBytes, Outcome, Registry};

/// Event reasons of the plugin registry.
pub mod reasons {
    /// A new version of a plugin serves.
    pub const LOADED: &str = "PluginLoaded";
    /// A version of a plugin was refused; the previous one (if any) keeps serving.
    pub const REJECTED: &str = "PluginRejected";
    /// A plugin left the configuration.
    pub const REMOVED: &str = "PluginRemoved";
    /// The configuration cannot be read; every plugin keeps serving.
    pub const CONFIG_INVALID: &str = "PluginConfigInvalid";
}

/// The Events' action.
const ACTION: &str = "LoadPlugin";
/// The most an Event's note may hold.
const MAX_NOTE_BYTES: usize = 1024;

/// Where the plugin configuration lives, beyond the built-ins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigLocation {
    /// Nowhere: the built-ins only, which never change.
    BuiltinsOnly,
    /// A file (`wasmray run --plugins`).
    File(PathBuf),
    /// The key [`CONFIG_MAP_KEY`] of this ConfigMap in the operator's namespace (`wasmray run
    /// --plugins-config-map`).
    ConfigMap(String),
}

/// Everything the registry is loaded from.
#[derive(Clone, Debug)]
pub struct Sources {
    /// The plugins every configuration starts from; the configuration's entries replace them
    /// by name.
    pub builtins: RegistryConfig,
    /// Where the configuration lives.
    pub config: ConfigLocation,
    /// The operator's namespace: where the plugins ConfigMap and ConfigMap sources are.
    pub namespace: String,
}

impl Sources {
    /// A configuration file alone: no built-ins, ConfigMap sources in `default`.
    pub fn file(path: PathBuf) -> Self {
        Sources { builtins: RegistryConfig::default(), config: ConfigLocation::File(path), namespace: "default".into() }
    }
}

/// Why the plugins could not be loaded when the operator started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The first list of the operator namespace's ConfigMaps failed.
    #[error("cannot list the ConfigMaps of namespace {namespace}: {source}")]
    ConfigMaps { namespace: String, source: watcher::Error },
    /// The ConfigMap watch ended before its first list.
    #[error("the ConfigMap watch of namespace {0} ended before its first list")]
    WatchEnded(String),
    /// The configuration cannot be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Everything the registry depends on, as one look saw it.
#[derive(Debug, PartialEq)]
struct View {
    /// The built-ins overlaid with the configuration, or why the configuration cannot be read.
    config: Result<RegistryConfig, String>,
    /// The bytes of every ConfigMap key the configuration names (absent keys absent).
    config_maps: ConfigMapBytes,
    /// The configuration file and every file source.
    files: Vec<Fingerprint>,
}

/// What to do about a look.
#[derive(Debug, PartialEq)]
enum Step<'v> {
    /// Nothing the registry depends on changed since the last action.
    Nothing,
    /// A file changed since the previous look; act once a look finds it unchanged.
    Wait,
    /// Bring the registry in line with this configuration.
    Reload(&'v RegistryConfig),
    /// The configuration cannot be read: every plugin keeps serving.
    KeepServing(&'v str),
}

/// Classifies a look (`now`) against the view last acted on and the previous look.
fn classify<'v>(acted_on: Option<&View>, previous: Option<&View>, now: &'v View) -> Step<'v> {
    if acted_on == Some(now) {
        return Step::Nothing;
    }
    // A file is caught half-written at most once: act only when two looks agree on the files.
    // ConfigMaps change atomically and need no such wait, and neither does the first load:
    // nothing serves yet that waiting would protect.
    let files_settled =
        acted_on.is_none_or(|acted_on| acted_on.files == now.files || previous.is_some_and(|p| p.files == now.files));
    if !files_settled {
        return Step::Wait;
    }
    match &now.config {
        Ok(config) => Step::Reload(config),
        Err(error) => Step::KeepServing(error),
    }
}

/// The ConfigMap watch: the stream that fills the cache and wakes the loop.
type Changes = BoxStream<'static, Result<watcher::Event<ConfigMap>, watcher::Error>>;

/// The cluster side: the ConfigMap cache, and the operator's one writer that records Events.
struct Cluster {
    writer: Writer,
    reporter: Reporter,
    config_maps: Store<ConfigMap>,
}

/// Keeps a [`Registry`] in line with its [`Sources`]; see the module docs.
pub struct PluginWatch {
    tracker: Tracker,
    /// Kept apart from the tracker: the stream is `Send` but not `Sync`, and the tracker is
    /// borrowed across awaits.
    changes: Option<Changes>,
}

/// What the loop looks at and acts on.
struct Tracker {
    registry: Arc<Registry>,
    sources: Sources,
    cluster: Option<Cluster>,
    /// The view the registry was last brought in line with (or found unreadable).
    acted_on: Option<View>,
    /// The previous look.
    previous: Option<View>,
}

impl PluginWatch {
    /// A watch of files only, without a cluster: no ConfigMaps, no Events. It loads nothing
    /// until [`PluginWatch::run`].
    pub fn without_cluster(registry: Arc<Registry>, sources: Sources) -> Self {
        let tracker = Tracker { registry, sources, cluster: None, acted_on: None, previous: None };
        PluginWatch { tracker, changes: None }
    }

    /// Starts watching the ConfigMaps of the operator's namespace (unless the built-ins are
    /// all there is), loads the plugins once with Events, and returns the watch, to be
    /// [`run`](PluginWatch::run), with what the first load did to each plugin.
    ///
    /// # Errors
    ///
    /// If the ConfigMaps cannot be listed, or the configuration cannot be read. A plugin that
    /// is rejected is not an error here: it is in the outcomes.
    pub async fn start(
        registry: Arc<Registry>,
        sources: Sources,
        client: Client,
        writer: Writer,
        reporter: Reporter,
    ) -> Result<(Self, Vec<(String, Outcome)>), StartError> {
        let namespace = sources.namespace.clone();
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
        let (config_maps, store) = reflector::store();
        let mut changes =
            reflector::reflector(store, watcher(api, watcher::Config::default()).default_backoff()).boxed();
        if sources.config != ConfigLocation::BuiltinsOnly {
            first_list(&mut changes, &namespace).await?;
        }
        let cluster = Cluster { writer, reporter, config_maps };
        let mut tracker = Tracker { registry, sources, cluster: Some(cluster), acted_on: None, previous: None };
        // Unlike later, an unreadable configuration is an error here: nothing serves yet.
        tracker.overlay()?;
        let view = tracker.look();
        let outcomes = tracker.act(view).await;
        Ok((PluginWatch { tracker, changes: Some(changes) }, outcomes))
    }

    /// Reloads the registry whenever what it is loaded from changes, polling files every
    /// `poll`. Runs until the task is dropped or aborted (or returns at once when there is only
    /// the built-ins, which never change).
    pub async fn run(self, poll: Duration) {
        let PluginWatch { mut tracker, mut changes } = self;
        if tracker.sources.config == ConfigLocation::BuiltinsOnly {
            return;
        }
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while next_change(changes.as_mut(), &mut tick).await {
            let view = tracker.look();
            tracker.act(view).await;
        }
        tracing::warn!(namespace = %tracker.sources.namespace, "ConfigMap watch ended; plugins no longer reload");
    }
}

/// Waits until something may have changed; `false` once the ConfigMap watch has ended.
async fn next_change(changes: Option<&mut Changes>, tick: &mut tokio::time::Interval) -> bool {
    let Some(changes) = changes else {
        tick.tick().await;
        return true;
    };
    tokio::select! {
        _ = tick.tick() => true,
        change = changes.next() => match change {
            Some(Ok(_)) => true,
            Some(Err(error)) => {
                // The watch backs off and retries by itself; the cache keeps its last state.
                tracing::warn!(%error, "ConfigMap watch failed; retrying");
                true
            }
            None => false,
        },
    }
}

/// Drives the watch until the cache holds the first full list.
async fn first_list(changes: &mut Changes, namespace: &str) -> Result<(), StartError> {
    loop {
        match changes.next().await {
            Some(Ok(watcher::Event::InitDone)) => return Ok(()),
            Some(Ok(_)) => {}
            Some(Err(source)) => return Err(StartError::ConfigMaps { namespace: namespace.into(), source }),
            None => return Err(StartError::WatchEnded(namespace.into())),
        }
    }
}

impl Tracker {
    /// Reads everything the registry depends on.
    fn look(&self) -> View {
        let config = self
            .overlay()
            .map(|overlay| self.sources.builtins.clone().overlaid_with(overlay))
            .map_err(|e| e.to_string());
        let mut files = match &self.sources.config {
            ConfigLocation::File(path) => vec![Fingerprint::of(path)],
            ConfigLocation::BuiltinsOnly | ConfigLocation::ConfigMap(_) => Vec::new(),
        };
        let mut config_maps = ConfigMapBytes::new();
        for spec in config.iter().flat_map(|c| &c.plugins) {
            match &spec.source {
                PluginSource::File(path) => files.push(Fingerprint::of(path)),
                PluginSource::ConfigMap { name, key } => {
                    if let Some(bytes) = self.config_map(name).and_then(|cm| value(&cm, key)) {
                        config_maps.insert((name.clone(), key.clone()), bytes);
                    }
                }
                PluginSource::Builtin(_) => {}
            }
        }
        View { config, config_maps, files }
    }

    /// The configuration beyond the built-ins.
    fn overlay(&self) -> Result<RegistryConfig, ConfigError> {
        match &self.sources.config {
            ConfigLocation::BuiltinsOnly => Ok(RegistryConfig::default()),
            ConfigLocation::File(path) => RegistryConfig::load(path),
            ConfigLocation::ConfigMap(name) => {
                let origin = format!("ConfigMap {}/{name} key {CONFIG_MAP_KEY}", self.sources.namespace);
                let text = self.config_map(name).and_then(|cm| value(&cm, CONFIG_MAP_KEY));
                let text = text.ok_or_else(|| ConfigError::Missing { origin: origin.clone() })?;
                let text = String::from_utf8_lossy(&text);
                // Relative file sources stay relative: to the operator's working directory.
                RegistryConfig::parse_from(&text, &origin, Path::new(""))
            }
        }
    }

    /// A ConfigMap of the operator's namespace, from the watch's cache.
    fn config_map(&self, name: &str) -> Option<Arc<ConfigMap>> {
        let cluster = self.cluster.as_ref()?;
        cluster.config_maps.get(&ObjectRef::new(name).within(&self.sources.namespace))
    }

    /// Classifies a look and acts on it: at most one reload, then its Events.
    async fn act(&mut self, view: View) -> Vec<(String, Outcome)> {
        let acted = match classify(self.acted_on.as_ref(), self.previous.as_ref(), &view) {
            Step::Nothing | Step::Wait => None,
            Step::Reload(config) => {
                let outcomes = self.registry.reload(config, &view.config_maps).await;
                self.report_outcomes(config, &outcomes).await;
                Some(outcomes)
            }
            Step::KeepServing(error) => {
                tracing::warn!(%error, "Plugin configuration unreadable; keeping the plugins loaded before");
                let note = format!("every plugin keeps serving the version loaded before: {error}");
                self.publish(EventType::Warning, reasons::CONFIG_INVALID, note, self.config_reference()).await;
                Some(Vec::new())
            }
        };
        match acted {
            Some(outcomes) => {
                self.acted_on = Some(view);
                self.previous = None;
                outcomes
            }
            None => {
                self.previous = Some(view);
                Vec::new()
            }
        }
    }

    async fn report_outcomes(&self, config: &RegistryConfig, outcomes: &[(String, Outcome)]) {
        for (name, outcome) in outcomes {
            let spec = config.plugin(name);
            let Some((type_, reason, note)) = describe(name, spec, outcome) else { continue };
            let regarding = match spec.map(|s| &s.source) {
                Some(PluginSource::ConfigMap { name, .. }) => self.config_map_reference(name),
                _ => self.config_reference(),
            };
            self.publish(type_, reason, note, regarding).await;
        }
    }

    /// What an Event about the configuration regards: the plugins ConfigMap, else the
    /// operator's Namespace.
    fn config_reference(&self) -> ObjectReference {
        match &self.sources.config {
            ConfigLocation::ConfigMap(name) => self.config_map_reference(name),
            ConfigLocation::BuiltinsOnly | ConfigLocation::File(_) => ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Namespace".into()),
                name: Some(self.sources.namespace.clone()),
                ..ObjectReference::default()
            },
        }
    }

    fn config_map_reference(&self, name: &str) -> ObjectReference {
        match self.config_map(name) {
            Some(cm) => cm.object_ref(&()),
            // Deleted, or never there: the reference still says which one was meant.
            None => ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("ConfigMap".into()),
                name: Some(name.into()),
                namespace: Some(self.sources.namespace.clone()),
                ..ObjectReference::default()
            },
        }
    }

    async fn publish(&self, type_: EventType, reason: &str, note: String, regarding: ObjectReference) {
        let Some(cluster) = &self.cluster else { return };
        let event =
            Event { type_, reason: reason.into(), note: Some(truncate(note)), action: ACTION.into(), secondary: None };
        if let Err(error) = cluster.writer.record(&cluster.reporter, &regarding, &event).await {
            tracing::warn!(%error, reason, object = ?regarding.name, "Cannot record plugin Event");
        }
    }
}

/// The bytes under a ConfigMap key: `binaryData`, or `data` as UTF-8.
fn value(cm: &ConfigMap, key: &str) -> Option<Vec<u8>> {
    let binary = cm.binary_data.as_ref().and_then(|d| d.get(key)).map(|b| b.0.clone());
    binary.or_else(|| cm.data.as_ref().and_then(|d| d.get(key)).map(|s| s.as_bytes().to_vec()))
}

/// The Event for one plugin's outcome, if it deserves one.
fn describe(name: &str, spec: Option<&PluginSpec>, outcome: &Outcome) -> Option<(EventType, &'static str, String)> {
    let from = spec.map(|s| source_text(&s.source)).unwrap_or_default();
    let kind = spec.map(|s| s.kind.world()).unwrap_or("plugin");
    match outcome {
        Outcome::Unchanged(_) => None,
        // Built-ins are part of the binary: their loading is not news.
        Outcome::Loaded(_) if spec.is_some_and(|s| matches!(s.source, PluginSource::Builtin(_))) => None,
        Outcome::Loaded(id) => Some((
            EventType::Normal,
            reasons::LOADED,
            format!("{kind} plugin {name} now serves version sha256:{} from {from}", id.digest),
        )),
        Outcome::Rejected { version, error, serving } => {
            let version =
                version.as_ref().map_or_else(|| "(unreadable)".to_string(), |v| format!("sha256:{}", v.digest));
            let serving = serving.as_ref().map_or_else(
                || "no version serves".to_string(),
                |s| format!("version sha256:{} keeps serving", s.digest),
            );
            Some((
                EventType::Warning,
                reasons::REJECTED,
                format!("{kind} plugin {name}: version {version} from {from} rejected; {serving}: {error}"),
            ))
        }
        Outcome::Removed(id) => Some((
            EventType::Normal,
            reasons::REMOVED,
            format!("plugin {name} (version sha256:{}) left the configuration and no longer serves", id.digest),
        )),
    }
}

fn source_text(source: &PluginSource) -> String {
    match source {
        PluginSource::File(path) => format!("file {}", path.display()),
        PluginSource::ConfigMap { name, key } => format!("ConfigMap {name} key {key}"),
        PluginSource::Builtin(package) => format!("built-in {package}"),
    }
}

fn truncate(mut note: String) -> String {
    if note.len() > MAX_NOTE_BYTES {
        let mut end = MAX_NOTE_BYTES - '…'.len_utf8();
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push('…');
    }
    note
}

/// What tells a changed file from an unchanged one without reading it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Fingerprint {
    path: PathBuf,
    modified: Option<SystemTime>,
    len: Option<u64>,
    /// An atomic replace (write, then rename) gives a new inode even within one mtime tick.
    inode: Option<u64>,
}

impl Fingerprint {
    fn of(path: &Path) -> Self {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(path).ok();
        Fingerprint {
            path: path.to_owned(),
            modified: meta.as_ref().and_then(|m| m.modified().ok()),
            len: meta.as_ref().map(|m| m.len()),
            inode: meta.map(|m| m.ino()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{PluginId, PluginKind};

    fn view(config: Result<RegistryConfig, String>, bytes: &[u8], file_len: u64) -> View {
        View {
            config,
            config_maps: [(("cm".to_string(), "p.wasm".to_string()), bytes.to_vec())].into(),
            files: vec![Fingerprint { path: "p.yaml".into(), modified: None, len: Some(file_len), inode: None }],
        }
    }

    fn spec(source: PluginSource) -> PluginSpec {
        PluginSpec { name: "gang".into(), kind: PluginKind::BatchScheduler, source, sha256: None }
    }

    #[test]
    fn a_changed_config_map_reloads_at_once_and_an_unchanged_look_does_nothing() {
        let before = view(Ok(RegistryConfig::default()), b"v1", 10);
        let after = view(Ok(RegistryConfig::default()), b"v2", 10);
        assert_eq!(classify(Some(&before), Some(&before), &before), Step::Nothing);
        assert_eq!(classify(Some(&before), Some(&before), &after), Step::Reload(&RegistryConfig::default()));
    }

    #[test]
    fn a_changed_file_waits_for_a_second_look_that_agrees() {
        let before = view(Ok(RegistryConfig::default()), b"v1", 10);
        let writing = view(Ok(RegistryConfig::default()), b"v1", 20);
        let written = view(Ok(RegistryConfig::default()), b"v1", 30);
        assert_eq!(classify(Some(&before), Some(&before), &writing), Step::Wait);
        assert_eq!(classify(Some(&before), Some(&writing), &written), Step::Wait);
        assert!(matches!(classify(Some(&before), Some(&written), &written), Step::Reload(_)));
        assert!(matches!(classify(None, None, &writing), Step::Reload(_)), "the first load does not wait");
    }

    #[test]
    fn an_unreadable_configuration_keeps_serving_and_is_reported_once() {
        let good = view(Ok(RegistryConfig::default()), b"v1", 10);
        let bad = view(Err("invalid plugin configuration".into()), b"v1", 10);
        assert_eq!(classify(Some(&good), Some(&good), &bad), Step::KeepServing("invalid plugin configuration"));
        assert_eq!(classify(Some(&bad), Some(&bad), &bad), Step::Nothing);
    }

    #[test]
    fn a_rejection_event_names_the_plugin_both_versions_and_the_error() {
        let source = PluginSource::ConfigMap { name: "gang-plugin".into(), key: "plugin.wasm".into() };
        let outcome = Outcome::Rejected {
            version: Some(PluginId { name: "gang".into(), digest: "ab".repeat(32) }),
            error: "not a batch-scheduler".into(),
            serving: Some(PluginId { name: "gang".into(), digest: "cd".repeat(32) }),
        };
        let (type_, reason, note) = describe("gang", Some(&spec(source)), &outcome).unwrap();
        assert_eq!((type_, reason), (EventType::Warning, "PluginRejected"));
        assert_eq!(
            note,
            format!(
                "batch-scheduler plugin gang: version sha256:{} from ConfigMap gang-plugin key plugin.wasm rejected; version sha256:{} keeps serving: not a batch-scheduler",
                "ab".repeat(32),
                "cd".repeat(32)
            )
        );
    }

    #[test]
    fn built_ins_loading_and_unchanged_plugins_make_no_event() {
        let id = PluginId { name: "gang".into(), digest: "ab".repeat(32) };
        let builtin = spec(PluginSource::Builtin("wasmray-plugin-volcano".into()));
        assert!(describe("gang", Some(&builtin), &Outcome::Loaded(id.clone())).is_none());
        let file = spec(PluginSource::File("/p/gang.wasm".into()));
        assert!(describe("gang", Some(&file), &Outcome::Unchanged(id.clone())).is_none());
        let (type_, reason, note) = describe("gang", Some(&file), &Outcome::Loaded(id)).unwrap();
        assert_eq!((type_, reason), (EventType::Normal, "PluginLoaded"));
        assert!(note.contains("file /p/gang.wasm"), "{note}");
    }

    #[tokio::test]
    async fn a_file_configuration_is_laid_over_the_built_ins_at_every_reload() {
        let component = |package| std::fs::read(super::super::builtin::test_program(package).unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (config_path, plugin_path) = (dir.path().join("plugins.yaml"), dir.path().join("echo.wasm"));
        std::fs::write(&plugin_path, component("wasmray-test-echo-v1")).unwrap();
        std::fs::write(&config_path, "plugins:\n- {name: echo, kind: reconciler, source: {file: echo.wasm}}\n")
            .unwrap();
        let builtins = RegistryConfig {
            plugins: vec![PluginSpec {
                name: "base".into(),
                kind: PluginKind::Reconciler,
                source: PluginSource::Builtin("wasmray-raycluster".into()),
                sha256: None,
            }],
        };
        let registry = Arc::new(Registry::new(crate::runtime::Runtime::new(Default::default()).unwrap()));
        let sources = Sources { builtins, config: ConfigLocation::File(config_path), namespace: "default".into() };
        let watch =
            tokio::spawn(PluginWatch::without_cluster(registry.clone(), sources).run(Duration::from_millis(10)));
        until("both plugins serve", || registry.names() == ["base", "echo"]).await;
        let v1 = registry.get("echo").unwrap().id().digest.clone();

        let tmp = dir.path().join("echo.tmp");
        std::fs::write(&tmp, component("wasmray-test-echo-v2")).unwrap();
        std::fs::rename(&tmp, &plugin_path).unwrap();
        until("echo v2 serves", || registry.get("echo").unwrap().id().digest != v1).await;
        assert_eq!(registry.names(), ["base", "echo"], "the built-in is still there after the reload");
        watch.abort();
    }

    async fn until(what: &str, done: impl Fn() -> bool) {
        let started = std::time::Instant::now();
        while !done() {
            assert!(started.elapsed() < Duration::from_secs(30), "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[test]
    fn notes_are_cut_to_what_an_event_holds() {
        let note = truncate("é".repeat(1000));
        assert!(note.len() <= MAX_NOTE_BYTES && note.ends_with('…'), "{}", note.len());
    }
}
