//! Reads a compiled component's imports and exports and decides which plugin kind it is.

use std::fmt;

use wasmtime::{
    Engine,
    component::{Component, types::ComponentItem},
};

/// The WIT package every plugin is built against.
pub const WIT_PACKAGE: &str = "wasmray:plugin";
/// The newest version of the WIT package this host implements.
pub const WIT_VERSION: &str = "0.2.0";

/// A release line of the WIT package this host serves: components built against any patch of
/// one are driven through that line's bindings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WitLine {
    /// 0.1.x, frozen in `wit/0.1.0/`: children are sent whole.
    V0_1,
    /// 0.2.x, today's `wit/plugin.wit`: reconcilers declare the child fields they read.
    V0_2,
}

impl WitLine {
    /// The line a version of our package belongs to, if this host serves it: same major, and
    /// for 0.x the same minor (semver's rule for pre-1.0), with any patch.
    pub fn of(version: &str) -> Option<Self> {
        let v: Vec<&str> = version.split(['.', '-', '+']).collect();
        match v.as_slice() {
            ["0", "1", _patch, ..] => Some(WitLine::V0_1),
            ["0", "2", _patch, ..] => Some(WitLine::V0_2),
            _ => None,
        }
    }
}

/// The versions served, for messages.
const SERVED: &str = "0.1.x and 0.2.x";

/// The kinds of plugin, one per WIT world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    /// World `reconciler`, exporting `reconcile`.
    Reconciler,
    /// World `batch-scheduler`, exporting `scheduling`.
    BatchScheduler,
    /// World `upgrade-strategy`, exporting `upgrade`.
    UpgradeStrategy,
}

impl PluginKind {
    /// All kinds, in WIT order.
    pub const ALL: [PluginKind; 3] =
        [PluginKind::Reconciler, PluginKind::BatchScheduler, PluginKind::UpgradeStrategy];

    /// The WIT world's name.
    pub fn world(self) -> &'static str {
        match self {
            PluginKind::Reconciler => "reconciler",
            PluginKind::BatchScheduler => "batch-scheduler",
            PluginKind::UpgradeStrategy => "upgrade-strategy",
        }
    }

    /// The interface the world exports.
    pub fn interface(self) -> &'static str {
        match self {
            PluginKind::Reconciler => "reconcile",
            PluginKind::BatchScheduler => "scheduling",
            PluginKind::UpgradeStrategy => "upgrade",
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.world())
    }
}

impl std::str::FromStr for PluginKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        PluginKind::ALL
            .into_iter()
            .find(|k| k.world() == s)
            .ok_or_else(|| format!("unknown plugin kind `{s}` (reconciler, batch-scheduler, upgrade-strategy)"))
    }
}

/// What a component is, as far as the host cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentInfo {
    pub kind: PluginKind,
    /// The version of `wasmray:plugin` the component was built against.
    pub wit_version: String,
    /// The release line of `wit_version`, whose bindings drive the component.
    pub line: WitLine,
    /// Exported interfaces, each with its functions: `wasmray:plugin/reconcile@0.1.0 { reconcile }`.
    pub exports: Vec<String>,
    /// Every import name.
    pub imports: Vec<String>,
}

/// WASI interfaces Rust's standard library imports; the sandbox provides them sealed.
const ALLOWED_WASI: [&str; 5] = ["wasi:cli/", "wasi:io/", "wasi:clocks/", "wasi:random/", "wasi:filesystem/"];
/// The WASI 0.2 line the sandbox links.
const WASI_VERSION_PREFIX: &str = "@0.2.";

/// Splits `ns:pkg/iface@1.2.3` into (`ns:pkg/iface`, `1.2.3`).
fn split_version(name: &str) -> (&str, Option<&str>) {
    match name.split_once('@') {
        Some((n, v)) => (n, Some(v)),
        None => (name, None),
    }
}

fn compatible_with_host(version: &str) -> bool {
    WitLine::of(version).is_some()
}

/// Inspects a component: exactly one of our interfaces exported, a compatible WIT version, and
/// no imports beyond `wasmray:plugin/{log,types}` and the sealed WASI set. Every problem found is
/// reported, not just the first.
pub fn inspect(engine: &Engine, component: &Component) -> Result<ComponentInfo, String> {
    let ty = component.component_type();
    let mut problems = Vec::new();
    let mut found = Vec::new();
    let mut exports = Vec::new();
    for (name, item) in ty.exports(engine) {
        let funcs = match &item.ty {
            ComponentItem::ComponentInstance(inst) => {
                // Functions only; the interface's types are listed by name too but say little.
                inst.exports(engine)
                    .filter(|(_, e)| matches!(e.ty, ComponentItem::ComponentFunc(_)))
                    .map(|(f, _)| f.to_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
            _ => String::new(),
        };
        exports.push(if funcs.is_empty() { name.to_owned() } else { format!("{name} {{ {funcs} }}") });
        let (iface, version) = split_version(name);
        if let Some(kind) = PluginKind::ALL.into_iter().find(|k| iface == format!("{WIT_PACKAGE}/{}", k.interface())) {
            found.push((kind, version.unwrap_or("").to_owned()));
        }
    }
    let mut imports = Vec::new();
    for (name, _) in ty.imports(engine) {
        imports.push(name.to_owned());
        let (iface, version) = split_version(name);
        let ours = iface == format!("{WIT_PACKAGE}/log") || iface == format!("{WIT_PACKAGE}/types");
        if ours {
            if !version.is_some_and(compatible_with_host) {
                problems.push(format!("imports `{name}`, but this host serves {WIT_PACKAGE} {SERVED}"));
            }
        } else if !(ALLOWED_WASI.iter().any(|p| iface.starts_with(p))
            && version.is_some_and(|v| format!("@{v}").starts_with(WASI_VERSION_PREFIX)))
        {
            problems.push(format!(
                "imports `{name}`; a plugin may import only {WIT_PACKAGE}/log and the WASI 0.2 cli, io, clocks, random and filesystem interfaces (which it gets sealed)"
            ));
        }
    }
    let (kind, wit_version) = match found.as_slice() {
        [one] => one.clone(),
        [] => {
            problems.push(format!(
                "exports none of {}/{{reconcile, scheduling, upgrade}}; is it built with the wasmray guest SDK's export macro?",
                WIT_PACKAGE
            ));
            return Err(problems.join("; "));
        }
        many => {
            let names: Vec<String> = many.iter().map(|(k, _)| k.interface().to_owned()).collect();
            problems.push(format!("exports more than one plugin interface: {}", names.join(", ")));
            return Err(problems.join("; "));
        }
    };
    let Some(line) = WitLine::of(&wit_version) else {
        problems.push(format!(
            "built against {WIT_PACKAGE}@{wit_version}, but this host serves {WIT_PACKAGE} {SERVED}"
        ));
        return Err(problems.join("; "));
    };
    if problems.is_empty() {
        Ok(ComponentInfo { kind, wit_version, line, exports, imports })
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_served_minor_line_takes_any_patch_and_no_other_line_is_served() {
        assert_eq!(WitLine::of("0.1.0"), Some(WitLine::V0_1));
        assert_eq!(WitLine::of("0.1.7"), Some(WitLine::V0_1));
        assert_eq!(WitLine::of("0.2.0"), Some(WitLine::V0_2));
        assert_eq!(WitLine::of("0.2.3-rc1"), Some(WitLine::V0_2));
        assert_eq!(WitLine::of(WIT_VERSION), Some(WitLine::V0_2));
        for unserved in ["0.3.0", "1.1.0", "0.1", "garbage", ""] {
            assert!(!compatible_with_host(unserved), "{unserved}");
        }
    }
}
