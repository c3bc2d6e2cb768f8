//! `wasmray dev up` / `dev down` as a user runs them: components outlive `up`, `down` stops
//! them all, and mistakes get a message naming the cause.

use std::path::Path;
use std::process::{Command, Output};

use k8s_openapi::api::core::v1::Node;
use kube::api::Api;

fn wasmray(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasmray")).args(args).output().expect("running wasmray")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn pid_is_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z")
}

#[tokio::test]
async fn dev_up_leaves_a_control_plane_running_with_the_given_nodes_and_dev_down_stops_it() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("plane");
    let nodes = tmp.path().join("nodes.yaml");
    std::fs::write(
        &nodes,
        "nodes:\n  - {name: cpu, count: 1, cpu: '8', memory: 32Gi}\n  - name: tpu\n    count: 2\n    cpu: '24'\n    memory: 48Gi\n    extendedResources: {google.com/tpu: '4'}\n    labels: {cloud.google.com/gke-tpu-accelerator: tpu-v4-podslice, cloud.google.com/gke-tpu-topology: 2x2x2}\n",
    )?;
    let dir_arg = dir.to_str().unwrap();

    let up = wasmray(&["dev", "up", "--dir", dir_arg, "--nodes", nodes.to_str().unwrap()]);
    assert!(up.status.success(), "dev up failed: {}", stderr(&up));

    let state: wasmray::dev::State = serde_json::from_str(&std::fs::read_to_string(dir.join("state.json"))?)?;
    let names: Vec<_> = state.components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"]);
    assert!(state.components.iter().all(|c| pid_is_alive(c.pid)), "every component outlives `dev up`");

    let client = wasmray::dev::client_for(&dir.join("kubeconfig")).await?;
    let mut listed: Vec<String> =
        Api::<Node>::all(client).list(&Default::default()).await?.items.into_iter().filter_map(|n| n.metadata.name).collect();
    listed.sort();
    assert_eq!(listed, ["cpu-0", "tpu-0", "tpu-1"]);

    let again = wasmray(&["dev", "up", "--dir", dir_arg]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("already holds a control plane"), "{}", stderr(&again));

    let down = wasmray(&["dev", "down", "--dir", dir_arg]);
    assert!(down.status.success(), "dev down failed: {}", stderr(&down));
    assert!(state.components.iter().all(|c| !pid_is_alive(c.pid)), "dev down stops every component");
    assert!(!dir.exists(), "dev down removes the state directory");

    let twice = wasmray(&["dev", "down", "--dir", dir_arg]);
    assert!(!twice.status.success());
    assert!(stderr(&twice).contains("holds no control plane"), "{}", stderr(&twice));
    Ok(())
}

#[test]
fn a_bad_node_set_is_named_and_nothing_is_started() {
    let tmp = tempfile::tempdir().unwrap();
    let nodes = tmp.path().join("nodes.yaml");
    std::fs::write(&nodes, "nodes: [{name: gpu, cpu: '8', memory: 32Gi, taints: [{key: k, effect: Always}]}]").unwrap();
    let dir = tmp.path().join("plane");

    let up = wasmray(&["dev", "up", "--dir", dir.to_str().unwrap(), "--nodes", nodes.to_str().unwrap()]);

    assert!(!up.status.success());
    let message = stderr(&up);
    assert!(message.contains("nodes.yaml") && message.contains("Always"), "{message}");
    assert!(!dir.join("state.json").exists());
}

#[test]
fn a_failure_during_start_up_is_named_and_nothing_is_left_running() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("plane");
    // A node set the apiserver refuses (an invalid quantity) makes start-up fail after every
    // component is running: the error must name the cause and stop them all.
    let nodes = tmp.path().join("nodes.yaml");
    std::fs::write(&nodes, "nodes: [{name: cpu, cpu: 'lots', memory: 32Gi}]").unwrap();

    let up = wasmray(&["dev", "up", "--dir", dir.to_str().unwrap(), "--nodes", nodes.to_str().unwrap()]);

    assert!(!up.status.success());
    let message = stderr(&up);
    assert!(message.contains("creating node cpu-0"), "{message}");
    let leftovers = Command::new("pgrep").args(["-f", dir.to_str().unwrap()]).output().unwrap();
    assert!(leftovers.stdout.is_empty(), "left running: {}", String::from_utf8_lossy(&leftovers.stdout));
}
