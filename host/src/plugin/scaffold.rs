//! `wasmray plugin new`: a plugin crate from the template in `plugins/template`.

use std::path::{Path, PathBuf};

use crate::runtime::PluginKind;

const CARGO_TOML: &str = include_str!("../../../plugins/template/Cargo.toml.tmpl");
const BATCH_SCHEDULER: &str = include_str!("../../../plugins/template/batch-scheduler.rs.tmpl");
const UPGRADE_STRATEGY: &str = include_str!("../../../plugins/template/upgrade-strategy.rs.tmpl");
/// Where the SDK was when this binary was built; used unless the caller names another.
const BUILT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guests/sdk");

/// Why a plugin crate could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name is not usable as a crate name.
    #[error("`{0}` is not a valid plugin name: use lowercase letters, digits and dashes, starting with a letter")]
    InvalidName(String),
    /// Reconcilers are built into wasmray, not scaffolded.
    #[error("there is no template for {0} plugins; use batch-scheduler or upgrade-strategy")]
    NoTemplate(PluginKind),
    /// The target directory is taken.
    #[error("{} already exists", .0.display())]
    Exists(PathBuf),
    /// The guest SDK could not be found.
    #[error("the wasmray guest SDK is not at {}; pass its path", .0.display())]
    NoSdk(PathBuf),
    /// Writing the files failed.
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

/// Creates `dir/name` with a plugin crate of `kind` and returns its path.
pub fn new_plugin(name: &str, kind: PluginKind, dir: &Path, sdk: Option<&Path>) -> Result<PathBuf, ScaffoldError> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(ScaffoldError::InvalidName(name.into()));
    }
    let lib = match kind {
        PluginKind::BatchScheduler => BATCH_SCHEDULER,
        PluginKind::UpgradeStrategy => UPGRADE_STRATEGY,
        PluginKind::Reconciler => return Err(ScaffoldError::NoTemplate(kind)),
    };
    let sdk = sdk.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(BUILT_SDK));
    let sdk = sdk.canonicalize().map_err(|_| ScaffoldError::NoSdk(sdk.clone()))?;
    let root = dir.join(name);
    if root.exists() {
        return Err(ScaffoldError::Exists(root));
    }
    let render = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{crate_name}}", &name.replace('-', "_"))
            .replace("{{kind}}", kind.world())
            .replace("{{sdk_path}}", &sdk.display().to_string())
    };
    let write = |path: PathBuf, text: String| {
        std::fs::create_dir_all(path.parent().expect("files are inside the root"))
            .and_then(|()| std::fs::write(&path, text))
            .map_err(|source| ScaffoldError::Write { path, source })
    };
    write(root.join("Cargo.toml"), render(CARGO_TOML))?;
    write(root.join("src/lib.rs"), render(lib))?;
    write(root.join(".gitignore"), "/target\n".into())?;
    Ok(root)
}
