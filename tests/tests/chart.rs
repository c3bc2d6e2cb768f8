//! The helm chart charts/wasmray-operator with the pinned helm against the local control plane: lint, rendered objects checked by server-side dry run, the schema, and installs whose RBAC the operator binary runs with.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, PostParams};
use serde_json::Value;
use wasmray_tests::fixtures::{WAIT, apply, eventually, pods, ray_cluster};
use wasmray_tests::helm::{
    chart_dir, describe, dry_run, helm, kubectl, objects, service_account_token, template, token_kubeconfig, values_fixture,
};
use wasmray_tests::{TestNamespace, cluster, install_batch_scheduler_crds, install_crds, namespace};

// ---------------------------------------------------------------------------------------------
// Rendering, without a cluster or with a dry run only.

#[test]
fn the_chart_lints_clean_in_strict_mode_with_each_values_file() {
    let chart = chart_dir().display().to_string();
    let out = helm(&["lint", "--strict", &chart]).unwrap();
    assert!(out.contains("0 chart(s) failed"), "{out}");
    for file in ["single-namespace-values.yaml", "kuberay-values.yaml"] {
        let values = values_fixture(file).display().to_string();
        let out = helm(&["lint", "--strict", &chart, "-f", &values]).unwrap();
        assert!(out.contains("0 chart(s) failed"), "{file}: {out}");
    }
}

#[tokio::test]
async fn default_values_render_a_cluster_wide_install_the_api_server_accepts() {
    let ns = namespace("chart-default").await.unwrap();
    let manifest = template("dflt", &ns.name, &[]).unwrap();
    let all = objects(&manifest).unwrap();
    assert_eq!(
        kinds(&all),
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "Deployment",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ],
        "{manifest}"
    );
    every_namespaced_object_is_in(&all, &ns.name, &[]);

    let deployment = find(&all, "Deployment", "dflt-wasmray-operator");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "ghcr.io/wasmray/wasmray-operator:0.1.0");
    assert_eq!(container["command"], serde_json::json!(["/wasmray"]));
    assert_eq!(
        args(&deployment),
        [
            "run",
            "--feature-gates=RayClusterStatusConditions=true,RayJobDeletionPolicy=false,RayMultiHostIndexing=false,RayServiceIncrementalUpgrade=false",
            "--log-stdout-encoder=json",
            "--enable-leader-election=true",
            &format!("--leader-election-namespace={}", ns.name),
            "--metrics-addr=:8080",
            "--health-probe-bind-address=:8082",
            "--reconcile-concurrency=1",
            "--qps=100",
            "--burst=200",
            "--plugins-config-map=dflt-wasmray-operator-plugins",
            "--compile-cache-dir=/var/cache/wasmray",
        ]
    );
    // Probes on the health endpoints, metrics on 8080, a hardened container.
    assert_eq!(container["livenessProbe"]["httpGet"], serde_json::json!({ "path": "/healthz", "port": "health" }));
    assert_eq!(container["readinessProbe"]["httpGet"], serde_json::json!({ "path": "/readyz", "port": "health" }));
    let ports: Vec<(Value, Value)> = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].clone(), p["containerPort"].clone()))
        .collect();
    assert_eq!(ports, [("http".into(), 8080.into()), ("health".into(), 8082.into())]);
    let security = &container["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(container["resources"]["limits"], serde_json::json!({ "cpu": "100m", "memory": "512Mi" }));
    // The compile cache is the one writable place, and the operator is told so.
    assert_eq!(container["volumeMounts"], serde_json::json!([{ "name": "compile-cache", "mountPath": "/var/cache/wasmray" }]));
    assert_eq!(
        deployment["spec"]["template"]["spec"]["volumes"],
        serde_json::json!([{ "name": "compile-cache", "emptyDir": { "sizeLimit": "256Mi" } }])
    );
    let env: Vec<&str> = container["env"].as_array().unwrap().iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(env, ["POD_NAMESPACE", "POD_NAME"]);

    // The plugins ConfigMap lists the built-in reconcilers.
    let plugins = find(&all, "ConfigMap", "dflt-wasmray-operator-plugins");
    let config: Value = serde_yaml::from_str(plugins["data"]["plugins.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(
        config,
        serde_json::json!({ "plugins": [
            { "name": "raycluster", "kind": "reconciler", "source": { "builtin": "wasmray-raycluster" } },
            { "name": "rayjob", "kind": "reconciler", "source": { "builtin": "wasmray-rayjob" } },
        ] })
    );

    // The ClusterRole holds what the operator writes; leader election is namespaced.
    let cluster_role = find(&all, "ClusterRole", "dflt-wasmray-operator");
    for (group, resource, verb) in [
        ("", "pods", "create"),
        ("", "pods", "delete"),
        ("", "services", "create"),
        ("", "secrets", "create"),
        ("", "serviceaccounts", "create"),
        ("", "events", "create"),
        ("events.k8s.io", "events", "create"),
        ("batch", "jobs", "create"),
        ("networking.k8s.io", "ingresses", "create"),
        ("rbac.authorization.k8s.io", "roles", "create"),
        ("rbac.authorization.k8s.io", "rolebindings", "create"),
        ("ray.io", "rayclusters", "watch"),
        ("ray.io", "rayclusters/status", "patch"),
        ("ray.io", "rayjobs", "update"),
        ("ray.io", "rayservices", "update"),
    ] {
        assert!(grants(&cluster_role, group, resource, verb), "the ClusterRole lacks {verb} {group}/{resource}");
    }
    assert!(!grants(&cluster_role, "scheduling.volcano.sh", "podgroups", "create"), "no batch scheduler, no PodGroups");
    let leader = find(&all, "Role", "dflt-wasmray-operator-leader-election");
    for (group, resource, verb) in
        [("coordination.k8s.io", "leases", "update"), ("", "configmaps", "watch"), ("events.k8s.io", "events", "create")]
    {
        assert!(grants(&leader, group, resource, verb), "the leader-election Role lacks {verb} {group}/{resource}");
    }

    dry_run(cluster().await.unwrap().kubeconfig(), &manifest).unwrap();
}

#[tokio::test]
async fn single_namespace_values_render_namespaced_rbac_only_and_the_api_server_accepts_them() {
    let ns = namespace("chart-single").await.unwrap();
    let single = values_fixture("single-namespace-values.yaml").display().to_string();
    let manifest = template("one", &ns.name, &["-f", &single]).unwrap();
    let all = objects(&manifest).unwrap();
    let without_crds: Vec<&str> = kinds(&all).into_iter().filter(|k| *k != "CustomResourceDefinition").collect();
    assert_eq!(without_crds, ["ConfigMap", "Deployment", "Role", "Role", "RoleBinding", "RoleBinding", "Service", "ServiceAccount"]);
    every_namespaced_object_is_in(&all, &ns.name, &[]);
    let deployment = find(&all, "Deployment", "one-wasmray-operator");
    assert!(args(&deployment).contains(&format!("--watch-namespace={}", ns.name)), "{:?}", args(&deployment));
    let role = find(&all, "Role", "one-wasmray-operator");
    assert!(grants(&role, "", "pods", "create") && grants(&role, "ray.io", "rayclusters", "watch"));
    dry_run(cluster().await.unwrap().kubeconfig(), &manifest).unwrap();
}

#[tokio::test]
async fn kuberay_shaped_values_render_with_kuberays_meanings_and_the_api_server_accepts_them() {
    let ns = namespace("chart-kuberay").await.unwrap();
    let (a, b) = (namespace("chart-kuberay-a").await.unwrap(), namespace("chart-kuberay-b").await.unwrap());
    let kuberay = values_fixture("kuberay-values.yaml").display().to_string();
    let watch = format!("watchNamespace={{{},{}}}", a.name, b.name);
    let manifest = template("kr", &ns.name, &["-f", &kuberay, "--set", &watch]).unwrap();
    let all = objects(&manifest).unwrap();
    every_namespaced_object_is_in(&all, &ns.name, &[&a.name, &b.name]);

    // fullnameOverride names everything as KubeRay's chart would.
    let deployment = find(&all, "Deployment", "kuberay-operator");
    let pod = &deployment["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(container["image"], "ghcr.io/wasmray/wasmray-operator:0.1.0");
    assert_eq!(container["imagePullPolicy"], "Always");
    assert_eq!(container["command"], serde_json::json!(["/manager"]));
    assert_eq!(
        args(&deployment),
        [
            "run",
            "--config=/etc/wasmray/config.yaml",
            "--feature-gates=RayClusterStatusConditions=true,RayJobDeletionPolicy=true,RayMultiHostIndexing=false,RayServiceIncrementalUpgrade=false",
            "--batch-scheduler=volcano",
            &format!("--watch-namespace={},{}", a.name, b.name),
            "--log-stdout-encoder=console",
            "--enable-leader-election=true",
            &format!("--leader-election-namespace={}", ns.name),
            "--metrics-addr=:8080",
            "--health-probe-bind-address=:8082",
            "--reconcile-concurrency=4",
            "--qps=50.5",
            "--burst=100",
            "--plugins-config-map=kuberay-operator-plugins",
            "--compile-cache-dir=/var/cache/wasmray",
        ]
    );
    assert_eq!(pod["metadata"]["labels"]["team"], "ml-platform");
    assert_eq!(pod["metadata"]["labels"]["app.kubernetes.io/component"], "kuberay-operator");
    assert_eq!(pod["metadata"]["annotations"]["example.com/owner"], "ml-platform");
    assert_eq!(deployment["metadata"]["labels"]["team"], "ml-platform");
    let spec = &pod["spec"];
    assert_eq!(spec["serviceAccountName"], "kuberay-operator");
    assert_eq!(spec["imagePullSecrets"], serde_json::json!([{ "name": "registry-credentials" }]));
    assert_eq!(spec["nodeSelector"], serde_json::json!({ "kubernetes.io/os": "linux" }));
    assert_eq!(spec["priorityClassName"], "system-cluster-critical");
    assert_eq!(spec["tolerations"][0]["value"], "ray-operator");
    assert!(spec["affinity"]["nodeAffinity"].is_object());
    assert_eq!(spec["securityContext"], serde_json::json!({ "runAsNonRoot": true, "fsGroup": 65532 }));
    assert_eq!(container["resources"]["requests"], serde_json::json!({ "cpu": "100m", "memory": "512Mi" }));
    assert_eq!(container["livenessProbe"]["periodSeconds"], 10);
    assert_eq!(container["readinessProbe"]["failureThreshold"], 3);
    let env: Vec<&str> = container["env"].as_array().unwrap().iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(env, ["POD_NAMESPACE", "POD_NAME", "ENABLE_INIT_CONTAINER_INJECTION", "CLUSTER_DOMAIN"]);
    assert!(
        container["volumeMounts"].as_array().unwrap().iter().any(|m| m["mountPath"] == "/etc/wasmray" && m["readOnly"] == true),
        "the configuration is mounted where --config points: {}",
        container["volumeMounts"]
    );

    // KubeRay's Configuration file, with its defaultContainerEnvs.
    let configuration = find(&all, "ConfigMap", "kuberay-operator-config");
    let file: Value = serde_yaml::from_str(configuration["data"]["config.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(
        file,
        serde_json::json!({
            "apiVersion": "config.ray.io/v1alpha1", "kind": "Configuration",
            "defaultContainerEnvs": [{ "name": "RAY_enable_open_telemetry", "value": "true" }]
        })
    );
    // The batch scheduler's built-in plugin is listed, and its PodGroups granted in each watched namespace.
    let plugins = find(&all, "ConfigMap", "kuberay-operator-plugins");
    let config: Value = serde_yaml::from_str(plugins["data"]["plugins.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(config["plugins"][2], serde_json::json!({ "name": "volcano", "kind": "batch-scheduler", "source": { "builtin": "wasmray-plugin-volcano" } }));
    for watched in [&a.name, &b.name] {
        let role = all
            .iter()
            .find(|o| o["kind"] == "Role" && o["metadata"]["namespace"] == watched.as_str())
            .unwrap_or_else(|| panic!("no Role in {watched}"));
        assert!(grants(role, "scheduling.volcano.sh", "podgroups", "create"), "{role}");
        assert!(all.iter().any(|o| o["kind"] == "RoleBinding" && o["metadata"]["namespace"] == watched.as_str()));
    }
    assert!(!kinds(&all).contains(&"ClusterRole"), "singleNamespaceInstall creates nothing cluster-wide");
    // Metrics: the Service on KubeRay's port name, and the ServiceMonitor with its selector labels.
    let service = find(&all, "Service", "kuberay-operator");
    assert_eq!(service["spec"]["ports"][0], serde_json::json!({ "name": "http", "port": 9090, "targetPort": "http", "protocol": "TCP" }));
    let monitor = find(&all, "ServiceMonitor", "kuberay-operator");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(monitor["spec"]["endpoints"][0]["interval"], "15s");
    assert_eq!(monitor["spec"]["endpoints"][0]["honorLabels"], false);

    let admin = cluster().await.unwrap().kubeconfig();
    let crd = std::fs::read_to_string(values_fixture("servicemonitor-crd.yaml")).unwrap();
    kubectl(admin, &["apply", "--server-side", "--force-conflicts", "--field-manager=wasmray-tests", "-f", "-"], Some(&crd)).unwrap();
    kubectl(admin, &["wait", "--for=condition=Established", "--timeout=30s", "crd/servicemonitors.monitoring.coreos.com"], None).unwrap();
    dry_run(admin, &manifest).unwrap();
}

#[tokio::test]
async fn user_plugins_go_into_the_plugins_config_map_and_replace_built_ins_by_name() {
    let ns = namespace("chart-plugins").await.unwrap();
    let scratch = Scratch::new("plugins").unwrap();
    // What `--set-file plugins.files.NAME=<(base64 -w0 NAME)` reads: a component's base64.
    let encoded = scratch.0.join("raycluster.wasm.b64");
    std::fs::write(&encoded, "AGFzbQ0AAQA=\n").unwrap();
    let file = format!("plugins.files.raycluster\\.wasm={}", encoded.display());
    let config = serde_json::json!([
        { "name": "raycluster", "kind": "reconciler",
          "source": { "configMap": { "name": "up-wasmray-operator-plugins", "key": "raycluster.wasm" } } },
        { "name": "blue-green", "kind": "upgrade-strategy", "source": { "file": "/plugins/blue-green.wasm" },
          "sha256": "9f2c000000000000000000000000000000000000000000000000000000000000" },
    ]);
    let json = format!("plugins.config={config}");
    let manifest = template("up", &ns.name, &["--set-file", &file, "--set-json", &json, "--set", "batchScheduler.name=yunikorn"]).unwrap();
    let all = objects(&manifest).unwrap();
    let plugins = find(&all, "ConfigMap", "up-wasmray-operator-plugins");
    let listed: Value = serde_yaml::from_str(plugins["data"]["plugins.yaml"].as_str().unwrap()).unwrap();
    // The user's raycluster replaces the built-in one (a name twice would be refused); the
    // built-in RayJob reconciler and the batch scheduler's plugin stay.
    assert_eq!(
        listed["plugins"],
        serde_json::json!([
            { "name": "rayjob", "kind": "reconciler", "source": { "builtin": "wasmray-rayjob" } },
            { "name": "yunikorn", "kind": "batch-scheduler", "source": { "builtin": "wasmray-plugin-yunikorn" } },
            config[0],
            config[1],
        ])
    );
    assert_eq!(plugins["binaryData"], serde_json::json!({ "raycluster.wasm": "AGFzbQ0AAQA=" }));
    dry_run(cluster().await.unwrap().kubeconfig(), &manifest).unwrap();

    // A ConfigMap of the user's own instead: the chart makes none and points the operator at it.
    let manifest = template("up", &ns.name, &["--set", "plugins.existingConfigMap=team-plugins"]).unwrap();
    let all = objects(&manifest).unwrap();
    assert!(!all.iter().any(|o| o["kind"] == "ConfigMap"), "{manifest}");
    let deployment = find(&all, "Deployment", "up-wasmray-operator");
    assert!(args(&deployment).contains(&"--plugins-config-map=team-plugins".to_string()));

    // An entry the operator would refuse is refused at install.
    let bad = r#"plugins.config=[{"name":"x","kind":"scheduler","source":{"builtin":"y"}}]"#;
    let error = template("up", &ns.name, &["--set-json", bad]).unwrap_err().to_string();
    assert!(error.contains("kind"), "{error}");
}

#[test]
fn misspelt_or_unsupported_values_are_refused() {
    for (set, says) in [
        ("leaderElectionEnabeld=false", "additional properties 'leaderElectionEnabeld' not allowed"),
        ("metrics.serviceMonitor.intervall=1m", "additional properties 'intervall' not allowed"),
        ("image.tga=v1", "additional properties 'tga' not allowed"),
        ("reconcileConcurrency=0", "reconcileConcurrency"),
        ("service.type=Headless", "service/type"),
        ("batchScheduler.enabled=true,batchScheduler.name=yunikorn", "set only batchScheduler.name"),
        ("logging.baseDir=/var/log,logging.fileName=operator.log", "logs to stdout only"),
        ("useKubernetesProxy=true", "not supported yet"),
    ] {
        let error = template("typo", "ops", &["--set", set]).expect_err(set).to_string();
        assert!(error.contains(says), "--set {set}: {error}");
    }
    // The correctly spelt key renders.
    let manifest = template("typo", "ops", &["--set", "leaderElectionEnabled=false"]).unwrap();
    let deployment = objects(&manifest).unwrap().into_iter().find(|o| o["kind"] == "Deployment").unwrap();
    assert!(args(&deployment).contains(&"--enable-leader-election=false".to_string()));
}

// ---------------------------------------------------------------------------------------------
// Installs, and the operator binary running with the installed ServiceAccount's identity.

#[tokio::test]
async fn a_cluster_wide_install_runs_on_a_kwok_node_and_its_cluster_role_is_enough_to_reconcile() {
    let ns = namespace("chart-install").await.unwrap();
    let workload = namespace("chart-install-ray").await.unwrap();
    install_crds(&ns.client).await.unwrap();
    // Cluster-wide RBAC, but watching one namespace of this test's only: other tests' operators
    // own the rest. The RayCluster's namespace has no Role: only the ClusterRole grants there.
    let watch = format!("watchNamespace={{{}}}", workload.name);
    let release = Release::install(&ns, &["--set", &watch]).await.unwrap();
    let installed = release.objects_exist().unwrap();
    assert!(installed.iter().any(|o| o.starts_with("clusterrole")), "{installed:?}");
    let pod = release.operator_pod_runs_on_a_kwok_node(&ns).await.unwrap();

    let operator = release.run_operator(&ns, &pod).unwrap();
    operator.serves_health_and_metrics().unwrap();
    reconciles_a_ray_cluster(&workload, &operator).await;
}

#[tokio::test]
async fn a_single_namespace_install_reconciles_its_namespace_and_can_touch_nothing_elsewhere() {
    let ns = namespace("chart-install-single").await.unwrap();
    let elsewhere = namespace("chart-install-elsewhere").await.unwrap();
    install_crds(&ns.client).await.unwrap();
    let single = values_fixture("single-namespace-values.yaml").display().to_string();
    let release = Release::install(&ns, &["-f", &single]).await.unwrap();
    let installed = release.objects_exist().unwrap();
    assert!(!installed.iter().any(|o| o.starts_with("clusterrole")), "{installed:?}");
    let pod = release.operator_pod_runs_on_a_kwok_node(&ns).await.unwrap();

    let operator = release.run_operator(&ns, &pod).unwrap();
    operator.serves_health_and_metrics().unwrap();
    reconciles_a_ray_cluster(&ns, &operator).await;

    // The same identity, elsewhere: every access review says no, and a request is refused.
    let client = wasmray::dev::client_for(&operator.kubeconfig).await.unwrap();
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    for (group, resource, verb) in [
        ("", "pods", "list"),
        ("", "pods", "create"),
        ("", "pods", "delete"),
        ("", "services", "create"),
        ("", "secrets", "get"),
        ("", "configmaps", "get"),
        ("", "serviceaccounts", "create"),
        ("", "events", "create"),
        ("events.k8s.io", "events", "create"),
        ("batch", "jobs", "create"),
        ("coordination.k8s.io", "leases", "get"),
        ("rbac.authorization.k8s.io", "roles", "create"),
        ("ray.io", "rayclusters", "list"),
        ("ray.io", "rayclusters", "create"),
        ("ray.io", "rayjobs", "get"),
    ] {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(elsewhere.name.clone()),
                    group: Some(group.into()),
                    resource: Some(resource.into()),
                    verb: Some(verb.into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = reviews.create(&PostParams::default(), &review).await.unwrap();
        let allowed = answer.status.as_ref().is_some_and(|s| s.allowed);
        assert!(!allowed, "the single-namespace operator may {verb} {group}/{resource} in {}", elsewhere.name);
    }
    let pods_elsewhere: Api<Pod> = Api::namespaced(client, &elsewhere.name);
    match pods_elsewhere.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("listing Pods in {} was not refused: {other:?}", elsewhere.name),
    }
}

#[tokio::test]
async fn the_kuberay_shaped_arguments_start_the_operator_with_their_configuration_file_and_batch_scheduler() {
    let ns = namespace("chart-kuberay-run").await.unwrap();
    install_crds(&ns.client).await.unwrap();
    install_batch_scheduler_crds(&ns.client).await.unwrap();
    let kuberay = values_fixture("kuberay-values.yaml").display().to_string();
    let watch = format!("watchNamespace={{{}}}", ns.name);
    let manifest = template("krun", &ns.name, &["-f", &kuberay, "--set", &watch]).unwrap();
    // The plugins ConfigMap the operator reads at start; RBAC is the installs' tests' subject,
    // so this one runs as the admin.
    let plugins = find(&objects(&manifest).unwrap(), "ConfigMap", "kuberay-operator-plugins");
    let admin = cluster().await.unwrap().kubeconfig().to_path_buf();
    kubectl(&admin, &["apply", "--server-side", "--field-manager=wasmray-tests", "-f", "-"], Some(&plugins.to_string())).unwrap();
    let operator =
        run_deployment(&manifest, &ns.name, "kuberay-operator-0", admin, Scratch::new("krun").unwrap()).unwrap();
    operator.serves_health_and_metrics().unwrap();
    reconciles_a_ray_cluster(&ns, &operator).await;
    // The batch scheduler's plugin and the configuration file's defaultContainerEnvs shaped it.
    let head = pods(&ns, "ray.io/cluster=chart-sample,ray.io/node-type=head").await.unwrap().remove(0);
    let spec = head.spec.unwrap_or_default();
    assert_eq!(spec.scheduler_name.as_deref(), Some("volcano"), "{}", operator.log());
    let env = spec.containers[0].env.clone().unwrap_or_default();
    assert!(
        env.iter().any(|e| e.name == "RAY_enable_open_telemetry" && e.value.as_deref() == Some("true")),
        "the head container lacks the configuration's defaultContainerEnvs: {env:?}"
    );
}

/// A sample RayCluster in `ns` gets its head Pod from the operator.
async fn reconciles_a_ray_cluster(ns: &TestNamespace, operator: &Operator) {
    apply(ns, &ray_cluster("chart-sample", &[("small", 1, 0, 2)])).await.unwrap();
    let result = eventually("the sample's head Pod", WAIT, || async {
        let heads = pods(ns, "ray.io/cluster=chart-sample,ray.io/node-type=head").await?;
        Ok(if heads.len() == 1 { Ok(()) } else { Err(format!("{} head Pods", heads.len())) })
    })
    .await;
    if let Err(error) = result {
        panic!("{error:#}\noperator log:\n{}", operator.log());
    }
}

/// A release installed with `helm install --wait` into a test namespace, uninstalled on drop
/// (its ClusterRole and ClusterRoleBinding outlive the namespace otherwise).
struct Release {
    name: String,
    namespace: String,
    kubeconfig: PathBuf,
    manifest: String,
}

impl Release {
    async fn install(ns: &TestNamespace, extra: &[&str]) -> anyhow::Result<Self> {
        // The namespace's random suffix keeps cluster-wide names apart between tests and runs.
        let suffix = ns.name.rsplit('-').next().unwrap_or("x");
        let name = format!("wr-{suffix}");
        let kubeconfig = cluster().await?.kubeconfig().to_path_buf();
        let config = kubeconfig.display().to_string();
        let chart = chart_dir().display().to_string();
        let mut args =
            vec!["install", &name, &chart, "--namespace", &ns.name, "--kubeconfig", &config, "--wait", "--timeout", "120s"];
        args.extend_from_slice(extra);
        // Made first, so that a failed install is uninstalled too.
        let mut release = Release { name: name.clone(), namespace: ns.name.clone(), kubeconfig, manifest: String::new() };
        helm(&args)?;
        release.manifest = helm(&["get", "manifest", &name, "--namespace", &ns.name, "--kubeconfig", &config])?;
        Ok(release)
    }

    /// Every object of the release exists; returns their `kind/name`s as kubectl says them.
    fn objects_exist(&self) -> anyhow::Result<Vec<String>> {
        let rendered = objects(&self.manifest)?;
        let found = kubectl(&self.kubeconfig, &["get", "-f", "-", "-o", "name"], Some(&self.manifest))?;
        let found: Vec<String> = found.lines().map(str::to_string).collect();
        anyhow::ensure!(
            found.len() == rendered.len(),
            "{} objects rendered, {} found: {found:?} of {:?}",
            rendered.len(),
            found.len(),
            rendered.iter().map(describe).collect::<Vec<_>>()
        );
        Ok(found)
    }

    /// The Deployment's one Pod is Running on a KWOK node; returns it.
    async fn operator_pod_runs_on_a_kwok_node(&self, ns: &TestNamespace) -> anyhow::Result<Pod> {
        let selector = format!("app.kubernetes.io/instance={},app.kubernetes.io/name=wasmray-operator", self.name);
        let running = pods(ns, &selector).await?;
        anyhow::ensure!(running.len() == 1, "{} operator Pods: {running:?}", running.len());
        let pod = running.into_iter().next().unwrap_or_default();
        let phase = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
        anyhow::ensure!(phase == "Running", "the operator Pod is {phase}");
        let node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone()).context("the operator Pod is not scheduled")?;
        let node = Api::<Node>::all(ns.client.clone()).get(&node_name).await?;
        let (key, value) = wasmray::dev::nodes::KWOK_NODE_ANNOTATION;
        anyhow::ensure!(
            node.metadata.annotations.as_ref().and_then(|a| a.get(key)).map(String::as_str) == Some(value),
            "{node_name} is not a KWOK node"
        );
        Ok(pod)
    }

    /// The operator binary, run as the Deployment's container would be, with the
    /// ServiceAccount's identity: a TokenRequest token and nothing else.
    fn run_operator(&self, ns: &TestNamespace, pod: &Pod) -> anyhow::Result<Operator> {
        let deployment = objects(&self.manifest)?
            .into_iter()
            .find(|o| o["kind"] == "Deployment")
            .context("the release has no Deployment")?;
        let account = deployment["spec"]["template"]["spec"]["serviceAccountName"].as_str().context("no serviceAccountName")?;
        let token = service_account_token(&self.kubeconfig, &self.namespace, account)?;
        let scratch = Scratch::new(&self.name)?;
        let kubeconfig = scratch.0.join("kubeconfig");
        token_kubeconfig(&self.kubeconfig, &token, &self.namespace, &kubeconfig)?;
        run_deployment(&self.manifest, &ns.name, pod.metadata.name.as_deref().unwrap_or_default(), kubeconfig, scratch)
    }
}

/// The operator binary run as the rendered Deployment's container would be: its arguments and
/// environment, with `kubeconfig`'s identity, and only the addresses, the cache directory and
/// the mounted configuration file moved to what this machine has.
fn run_deployment(manifest: &str, namespace: &str, pod_name: &str, kubeconfig: PathBuf, scratch: Scratch) -> anyhow::Result<Operator> {
    let all = objects(manifest)?;
    let deployment = all.iter().find(|o| o["kind"] == "Deployment").context("no Deployment")?;
    let spec = &deployment["spec"]["template"]["spec"];
    let (metrics_port, health_port) = (free_port()?, free_port()?);
    let cache = scratch.0.join("compile-cache");
    std::fs::create_dir(&cache)?;
    let mut argv: Vec<String> = Vec::new();
    for arg in args(deployment) {
        argv.push(match arg.split_once('=') {
            Some(("--metrics-addr", ":8080")) => format!("--metrics-addr=127.0.0.1:{metrics_port}"),
            Some(("--health-probe-bind-address", ":8082")) => format!("--health-probe-bind-address=127.0.0.1:{health_port}"),
            Some(("--compile-cache-dir", _)) => format!("--compile-cache-dir={}", cache.display()),
            Some(("--config", _)) => {
                // The file the chart's configuration ConfigMap mounts.
                let config = all
                    .iter()
                    .find(|o| o["kind"] == "ConfigMap" && o["data"]["config.yaml"].is_string())
                    .context("--config without its ConfigMap")?;
                let file = scratch.0.join("config.yaml");
                std::fs::write(&file, config["data"]["config.yaml"].as_str().unwrap_or_default())?;
                format!("--config={}", file.display())
            }
            _ => arg,
        });
    }
    // After `run`, the subcommand.
    argv.insert(1, format!("--kubeconfig={}", kubeconfig.display()));
    let mut command = Command::new(operator_binary()?);
    command.args(&argv).env_remove("KUBECONFIG").env("POD_NAMESPACE", namespace).env("POD_NAME", pod_name);
    for var in spec["containers"][0]["env"].as_array().into_iter().flatten() {
        if let (Some(name), Some(value)) = (var["name"].as_str(), var["value"].as_str()) {
            command.env(name, value);
        }
    }
    let log = scratch.0.join("operator.log");
    let file = std::fs::File::create(&log)?;
    let child = command.stdin(Stdio::null()).stdout(file.try_clone()?).stderr(file).spawn()?;
    let ports = (metrics_port, health_port);
    Ok(Operator { child, log, kubeconfig, ports, argv, _scratch: scratch })
}

impl Drop for Release {
    fn drop(&mut self) {
        let config = self.kubeconfig.display().to_string();
        let _ = helm(&["uninstall", &self.name, "--namespace", &self.namespace, "--kubeconfig", &config, "--wait"]);
    }
}

/// `wasmray run` as a process, killed on drop.
struct Operator {
    child: Child,
    log: PathBuf,
    kubeconfig: PathBuf,
    /// (metrics, health) on 127.0.0.1.
    ports: (u16, u16),
    argv: Vec<String>,
    _scratch: Scratch,
}

impl Operator {
    /// The command line and the log's last lines (a failing reconcile repeats itself).
    fn log(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        format!("wasmray {}\n{tail}", self.argv.join(" "))
    }

    /// The endpoints the chart's probes and Service point at answer 200.
    fn serves_health_and_metrics(&self) -> anyhow::Result<()> {
        let (metrics, health) = self.ports;
        for (port, path) in [(health, "/healthz"), (health, "/readyz"), (metrics, "/metrics")] {
            let deadline = SystemTime::now() + WAIT;
            loop {
                match http_status(port, path) {
                    Ok(200) => break,
                    last if SystemTime::now() > deadline => {
                        anyhow::bail!("GET {path} on :{port}: {last:?} after {WAIT:?}\n{}", self.log())
                    }
                    _ => std::thread::sleep(Duration::from_millis(250)),
                }
            }
        }
        Ok(())
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary under test: `$WASMRAY_BIN` (tests/run sets it), else the debug build in
/// `$CARGO_TARGET_DIR`.
fn operator_binary() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("WASMRAY_BIN")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(|dir| Path::new(&dir).join("debug/wasmray")))
        .context("WASMRAY_BIN is not set: it names the wasmray binary (tests/run sets it); by hand `cargo build -p wasmray` and export WASMRAY_BIN")?;
    anyhow::ensure!(path.is_file(), "{} is not a file; build it with `cargo build -p wasmray`", path.display());
    Ok(path)
}

/// A port free on 127.0.0.1 now.
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The status code of `GET path` on 127.0.0.1:port.
fn http_status(port: u16, path: &str) -> anyhow::Result<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.split_whitespace().nth(1).context("no status line")?;
    Ok(status.parse()?)
}

/// A fresh directory under the system's temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> anyhow::Result<Self> {
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)?.as_nanos();
        let dir = std::env::temp_dir().join(format!("wasmray-chart-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// Reading rendered objects.

/// The kinds of `objects`, sorted.
fn kinds(objects: &[Value]) -> Vec<&str> {
    let mut kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    kinds.sort_unstable();
    kinds
}

fn find(objects: &[Value], kind: &str, name: &str) -> Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no {kind} {name} in {:?}", objects.iter().map(describe).collect::<Vec<_>>()))
}

/// A Deployment's container arguments.
fn args(deployment: &Value) -> Vec<String> {
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// helm does not add namespaces to what it renders: each namespaced object names its own,
/// the release's or one of `watched`; cluster-scoped ones name none.
fn every_namespaced_object_is_in(objects: &[Value], release: &str, watched: &[&str]) {
    const CLUSTER_SCOPED: [&str; 3] = ["ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"];
    for object in objects {
        let namespace = object["metadata"]["namespace"].as_str();
        if CLUSTER_SCOPED.contains(&object["kind"].as_str().unwrap_or_default()) {
            assert_eq!(namespace, None, "{}", describe(object));
        } else {
            let ns = namespace.unwrap_or_else(|| panic!("{} names no namespace", describe(object)));
            assert!(ns == release || watched.contains(&ns), "{} is outside the release's namespaces", describe(object));
        }
    }
}

/// Whether a (Cluster)Role's rules grant `verb` on `group`/`resource`.
fn grants(role: &Value, group: &str, resource: &str, verb: &str) -> bool {
    let has = |rule: &Value, field: &str, want: &str| {
        rule[field].as_array().is_some_and(|items| items.iter().any(|i| i == want || i == "*"))
    };
    role["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|rule| has(rule, "apiGroups", group) && has(rule, "resources", resource) && has(rule, "verbs", verb))
}
