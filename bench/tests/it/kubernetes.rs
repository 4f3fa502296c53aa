//! The Kubernetes manifests (deploy/kubernetes), checked without a cluster: every overlay is
//! built by kubectl's own kustomize, as `kubectl apply -k` would build it, and what it builds is
//! compared with the workspace. Every variant needs a Deployment and a Service; every server's
//! environment must be exactly the variables the servers read (`bakeoff_core::config::ENV_VARS`),
//! the same for all, its database the read-only role; every container's requests must equal its
//! limits (Guaranteed QoS); the load Job must run as many shards as it has pods, one engine
//! thread per CPU, against every server; placement must keep load pods off the servers' nodes.
//! (deploy/kubernetes/check.sh validates the same builds against the Kubernetes schemas.)
//!
//! Each check returns the problems it found as sentences; `checks_catch_drift` feeds them
//! broken builds to show that they would.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use bakeoff::harness::servers::TargetSpec;
use bakeoff::results::vocabulary::{Peer, Variant};
use bakeoff_core::config::ENV_VARS;
use bakeoff_testkit::postgres::APP_ROLE;
use base64::Engine as _;
use yaml_rust2::{Yaml, YamlLoader};

const ROLE_LABEL: &str = "bakeoff/role";
const BENCH_JOB: &str = "bakeoff-bench";

fn kubernetes() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("deploy")
        .join("kubernetes")
}

/// Every overlay's folder, by name.
fn overlays() -> BTreeMap<String, PathBuf> {
    let folder = kubernetes().join("overlays");
    std::fs::read_dir(&folder)
        .unwrap_or_else(|error| panic!("{}: {error}", folder.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("kustomization.yaml").is_file())
        .map(|path| {
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                path,
            )
        })
        .collect()
}

/// What `kubectl kustomize` builds of an overlay.
fn build(overlay: &Path) -> String {
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(overlay)
        .output()
        .unwrap_or_else(|error| {
            panic!("kubectl kustomize needs kubectl (with its kustomize, v5 or later): {error}")
        });
    assert!(
        output.status.success(),
        "kubectl kustomize {}: {}",
        overlay.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The resources of a build, by kind and name.
struct Resources {
    documents: Vec<Yaml>,
}

impl Resources {
    fn parse(text: &str) -> Resources {
        Resources {
            documents: YamlLoader::load_from_str(text)
                .unwrap()
                .into_iter()
                .filter(|document| !document.is_null())
                .collect(),
        }
    }

    fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Yaml> {
        self.documents
            .iter()
            .filter(move |document| document["kind"].as_str() == Some(kind))
    }

    fn get(&self, kind: &str, name: &str) -> Option<&Yaml> {
        self.documents.iter().find(|document| {
            document["kind"].as_str() == Some(kind)
                && document["metadata"]["name"].as_str() == Some(name)
        })
    }

    /// Deployments, StatefulSets and Jobs: what has a pod template.
    fn workloads(&self) -> impl Iterator<Item = &Yaml> {
        self.documents.iter().filter(|document| {
            matches!(
                document["kind"].as_str(),
                Some("Deployment" | "StatefulSet" | "Job")
            )
        })
    }

    fn servers(&self) -> Vec<&Yaml> {
        self.of_kind("Deployment")
            .filter(|document| {
                document["metadata"]["labels"][ROLE_LABEL].as_str() == Some("server")
            })
            .collect()
    }

    /// The decoded value of a Secret's key.
    fn secret(&self, name: &str, key: &str) -> Option<String> {
        // kustomize folds long values over several lines.
        let encoded: String = self.get("Secret", name)?["data"][key]
            .as_str()?
            .split_whitespace()
            .collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        String::from_utf8(bytes).ok()
    }
}

fn name(document: &Yaml) -> &str {
    document["metadata"]["name"].as_str().unwrap_or("?")
}

fn pod_spec(document: &Yaml) -> &Yaml {
    &document["spec"]["template"]["spec"]
}

fn containers(document: &Yaml) -> Vec<&Yaml> {
    let spec = pod_spec(document);
    ["initContainers", "containers"]
        .iter()
        .filter_map(|list| spec[*list].as_vec())
        .flatten()
        .collect()
}

fn container<'a>(document: &'a Yaml, container_name: &str) -> Option<&'a Yaml> {
    containers(document)
        .into_iter()
        .find(|container| container["name"].as_str() == Some(container_name))
}

fn words(node: &Yaml) -> Vec<String> {
    node.as_vec()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The value of `--flag=value` among a container's arguments.
fn flag(arguments: &[String], flag: &str) -> Vec<String> {
    arguments
        .iter()
        .filter_map(|argument| argument.strip_prefix(&format!("{flag}=")))
        .map(str::to_string)
        .collect()
}

/// A CPU quantity in thousandths (`2` -> 2000, `500m` -> 500).
fn millicores(quantity: &Yaml) -> Option<u64> {
    let text = match quantity {
        Yaml::String(text) => text.clone(),
        Yaml::Integer(number) => number.to_string(),
        Yaml::Real(number) => number.clone(),
        _ => return None,
    };
    match text.strip_suffix('m') {
        Some(millis) => millis.parse().ok(),
        None => text
            .parse::<f64>()
            .ok()
            .map(|cores| (cores * 1000.0).round() as u64),
    }
}

// ---- The checks --------------------------------------------------------------------------------

/// Every variant a Deployment and a Service of its own name, running its own image.
fn check_variants(resources: &Resources) -> Vec<String> {
    let mut problems = Vec::new();
    for variant in Variant::all() {
        let variant = variant.name();
        match resources.get("Deployment", &variant) {
            None => problems.push(format!("no Deployment for the variant {variant}")),
            Some(deployment) => {
                if deployment["metadata"]["labels"][ROLE_LABEL].as_str() != Some("server") {
                    problems.push(format!(
                        "Deployment {variant} is not labelled {ROLE_LABEL}=server"
                    ));
                }
                let image = container(deployment, "server")
                    .and_then(|server| server["image"].as_str())
                    .unwrap_or("");
                if !image.contains(&format!("bakeoff/{variant}:")) {
                    problems.push(format!(
                        "Deployment {variant} runs {image:?}, not the image bakeoff/{variant} with a tag"
                    ));
                }
            }
        }
        if resources.get("Service", &variant).is_none() {
            problems.push(format!("no Service for the variant {variant}"));
        }
    }
    problems
}

/// Every server's environment: exactly ENV_VARS, the same for all, the database as the
/// read-only role; and everything else about the servers the same.
fn check_server_environment(resources: &Resources) -> Vec<String> {
    let mut problems = Vec::new();
    let expected: BTreeSet<String> = ENV_VARS.iter().map(|v| v.to_string()).collect();
    let mut first: Option<(&str, Yaml)> = None;
    for deployment in resources.servers() {
        let deployment_name = name(deployment);
        let Some(server) = container(deployment, "server") else {
            problems.push(format!(
                "Deployment {deployment_name} has no container `server`"
            ));
            continue;
        };
        let mut variables: BTreeMap<String, usize> = BTreeMap::new();
        for variable in server["env"].as_vec().into_iter().flatten() {
            *variables
                .entry(variable["name"].as_str().unwrap_or("").to_string())
                .or_insert(0) += 1;
        }
        for source in server["envFrom"].as_vec().into_iter().flatten() {
            let map_name = source["configMapRef"]["name"].as_str().unwrap_or("");
            match resources.get("ConfigMap", map_name) {
                Some(map) => {
                    for key in map["data"].as_hash().into_iter().flat_map(|data| data.keys()) {
                        *variables
                            .entry(key.as_str().unwrap_or("").to_string())
                            .or_insert(0) += 1;
                    }
                }
                None => problems.push(format!(
                    "Deployment {deployment_name} reads the ConfigMap {map_name}, which the build lacks"
                )),
            }
        }
        let set: BTreeSet<String> = variables.keys().cloned().collect();
        for missing in expected.difference(&set) {
            problems.push(format!(
                "Deployment {deployment_name} does not set {missing}"
            ));
        }
        for unknown in set.difference(&expected) {
            problems.push(format!(
                "Deployment {deployment_name} sets {unknown}, which the servers do not read"
            ));
        }
        for (variable, _) in variables.iter().filter(|(_, count)| **count > 1) {
            problems.push(format!(
                "Deployment {deployment_name} sets {variable} twice"
            ));
        }
        problems.extend(check_database_url(resources, deployment_name, server));
        // Everything but the name, the image and its arguments (a peer's script in the peers'
        // one image) is the same for every server.
        let mut shared = server.clone();
        if let Yaml::Hash(map) = &mut shared {
            map.remove(&Yaml::String("image".into()));
            map.remove(&Yaml::String("args".into()));
        }
        let mut spec = pod_spec(deployment).clone();
        if let Yaml::Hash(map) = &mut spec {
            map.remove(&Yaml::String("containers".into()));
        }
        let compared = Yaml::Array(vec![shared, spec, deployment["spec"]["replicas"].clone()]);
        match &first {
            None => first = Some((deployment_name, compared)),
            Some((first_name, first_compared)) if *first_compared != compared => problems.push(
                format!("the servers {first_name} and {deployment_name} are not configured alike"),
            ),
            Some(_) => {}
        }
    }
    problems
}

/// DATABASE_URL from a Secret of the build, as the read-only role the servers connect as.
fn check_database_url(resources: &Resources, deployment: &str, server: &Yaml) -> Vec<String> {
    let reference = server["env"]
        .as_vec()
        .into_iter()
        .flatten()
        .find(|variable| variable["name"].as_str() == Some("DATABASE_URL"))
        .map(|variable| &variable["valueFrom"]["secretKeyRef"]);
    let url = reference.and_then(|reference| {
        resources.secret(reference["name"].as_str()?, reference["key"].as_str()?)
    });
    match url.as_deref().map(url::Url::parse) {
        Some(Ok(url)) if url.username() == APP_ROLE => Vec::new(),
        Some(Ok(url)) => vec![format!(
            "Deployment {deployment} connects as {:?}, not the read-only role {APP_ROLE}",
            url.username()
        )],
        _ => vec![format!(
            "Deployment {deployment} has no DATABASE_URL from a Secret of the build"
        )],
    }
}

/// Every container of every workload: CPU and memory requested, and requests equal to limits.
fn check_guaranteed(resources: &Resources) -> Vec<String> {
    let mut problems = Vec::new();
    for workload in resources.workloads() {
        for container in containers(workload) {
            let resources = &container["resources"];
            let label = format!(
                "{} {} container {}",
                workload["kind"].as_str().unwrap_or("?"),
                name(workload),
                container["name"].as_str().unwrap_or("?")
            );
            for resource in ["cpu", "memory"] {
                let (request, limit) = (
                    &resources["requests"][resource],
                    &resources["limits"][resource],
                );
                if request.is_badvalue() || limit.is_badvalue() {
                    problems.push(format!("{label} has no {resource} request and limit"));
                } else if request != limit {
                    problems.push(format!(
                        "{label}: its {resource} requests differ from its limits (Guaranteed QoS needs them equal)"
                    ));
                }
            }
        }
    }
    problems
}

/// The load Job: indexed, one shard per pod, an engine thread per CPU, every server a target.
fn check_bench(resources: &Resources) -> Vec<String> {
    let Some(job) = resources.get("Job", BENCH_JOB) else {
        return vec![format!("no Job {BENCH_JOB}")];
    };
    let mut problems = Vec::new();
    let spec = &job["spec"];
    if spec["completionMode"].as_str() != Some("Indexed") {
        problems.push(format!("Job {BENCH_JOB} is not an indexed Job"));
    }
    let Some(load) = container(job, "load") else {
        return vec![format!("Job {BENCH_JOB} has no container `load`")];
    };
    let arguments = words(&load["args"]);
    if arguments.first().map(String::as_str) != Some("load") {
        problems.push(format!("Job {BENCH_JOB} does not run `bakeoff load`"));
    }
    let shards: Option<i64> = flag(&arguments, "--shards")
        .first()
        .and_then(|n| n.parse().ok());
    for field in ["completions", "parallelism"] {
        if spec[field].as_i64() != shards || shards.is_none() {
            problems.push(format!(
                "Job {BENCH_JOB}'s {field} is not its --shards ({shards:?})"
            ));
        }
    }
    let threads = flag(&arguments, "--threads")
        .first()
        .and_then(|n| n.parse::<u64>().ok());
    let cpus = millicores(&load["resources"]["limits"]["cpu"]);
    if threads.map(|threads| threads * 1000) != cpus {
        problems.push(format!(
            "Job {BENCH_JOB}'s --threads ({threads:?}) is not its CPU limit ({cpus:?} millicores)"
        ));
    }
    if !arguments
        .iter()
        .any(|argument| argument.starts_with("--start-at="))
    {
        problems.push(format!("Job {BENCH_JOB} gives no --start-at"));
    }
    let targets: BTreeMap<String, String> = flag(&arguments, "--target")
        .iter()
        .filter_map(|text| TargetSpec::parse(text).ok())
        .map(|target| (target.name, target.url))
        .collect();
    for server in resources.servers() {
        let server_name = name(server);
        let port = resources
            .get("Service", server_name)
            .and_then(|service| service["spec"]["ports"][0]["port"].as_i64());
        let expected = port.map(|port| format!("http://{server_name}:{port}"));
        if expected.is_none() || targets.get(server_name) != expected.as_ref() {
            problems.push(format!(
                "Job {BENCH_JOB} does not target {server_name} at its Service ({expected:?})"
            ));
        }
    }
    problems
}

/// Where the three roles are placed by node label: no load pod beside a server, both ways.
fn check_placement(resources: &Resources) -> Vec<String> {
    let placed = resources
        .workloads()
        .any(|workload| !pod_spec(workload)["nodeSelector"].is_badvalue());
    if !placed {
        return Vec::new();
    }
    let mut problems = Vec::new();
    for workload in resources.workloads() {
        let role = workload["metadata"]["labels"][ROLE_LABEL]
            .as_str()
            .unwrap_or("");
        let spec = pod_spec(workload);
        if spec["nodeSelector"][ROLE_LABEL].as_str() != Some(role) {
            problems.push(format!(
                "{} is not placed on nodes labelled {ROLE_LABEL}={role}",
                name(workload)
            ));
        }
        let avoided = match role {
            "server" => "load",
            "load" => "server",
            _ => continue,
        };
        let avoids =
            spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                .as_vec()
                .into_iter()
                .flatten()
                .any(|term| {
                    term["topologyKey"].as_str() == Some("kubernetes.io/hostname")
                        && term["labelSelector"]["matchLabels"][ROLE_LABEL].as_str()
                            == Some(avoided)
                });
        if !avoids {
            problems.push(format!(
                "{} may share a node with a {avoided} pod (no required anti-affinity)",
                name(workload)
            ));
        }
    }
    problems
}

fn check_all(text: &str) -> Vec<String> {
    let resources = Resources::parse(text);
    let mut problems = check_variants(&resources);
    problems.extend(check_server_environment(&resources));
    problems.extend(check_guaranteed(&resources));
    problems.extend(check_bench(&resources));
    problems.extend(check_placement(&resources));
    problems
}

// ---- The tests ---------------------------------------------------------------------------------

#[test]
fn every_overlay_runs_every_variant_alike_with_guaranteed_resources() {
    let overlays = overlays();
    assert!(overlays.len() >= 5, "{overlays:?}");
    let mut peers_somewhere = false;
    for (overlay, path) in &overlays {
        let text = build(path);
        let problems = check_all(&text);
        assert!(
            problems.is_empty(),
            "overlay {overlay}:\n{}",
            problems.join("\n")
        );
        let resources = Resources::parse(&text);
        let with_images: Vec<&Peer> = Peer::all().iter().filter(|peer| peer.has_image()).collect();
        let peers: Vec<String> = with_images
            .iter()
            .map(|peer| peer.name())
            .filter(|peer| resources.get("Deployment", peer).is_some())
            .collect();
        assert!(
            peers.is_empty() || peers.len() == with_images.len(),
            "overlay {overlay} has some peers, not all: {peers:?}"
        );
        peers_somewhere |= !peers.is_empty();
    }
    assert!(peers_somewhere, "no overlay runs the peers");
    for placed in ["three-roles", "three-roles-pgbouncer"] {
        let resources = Resources::parse(&build(&overlays[placed]));
        assert!(
            resources
                .workloads()
                .all(|workload| !pod_spec(workload)["nodeSelector"].is_badvalue()),
            "{placed} leaves a workload unplaced"
        );
    }
}

#[test]
fn the_database_is_initialised_as_in_docker() {
    let root = kubernetes().join("../..");
    for (copy, original) in [
        ("initdb/10-schema.sql", "schema/schema.sql"),
        ("initdb/20-bakeoff.sh", "docker/initdb/20-bakeoff.sh"),
    ] {
        let copy_path = kubernetes()
            .join("components/in-cluster-postgres")
            .join(copy);
        assert_eq!(
            std::fs::read_to_string(&copy_path).unwrap(),
            std::fs::read_to_string(root.join(original)).unwrap(),
            "{} is not a copy of {original}: copy it again (kustomize reads no file outside its folder)",
            copy_path.display()
        );
    }
}

#[test]
fn checks_catch_drift() {
    let text = build(&overlays()["in-cluster"]);
    assert_eq!(check_all(&text), Vec::<String>::new());
    let broken = |from: &str, to: &str| {
        assert!(
            text.contains(from),
            "the build changed: update this test ({from:?})"
        );
        text.replacen(from, to, 1)
    };
    let mentions = |problems: Vec<String>, words: &str| {
        assert!(
            problems.iter().any(|problem| problem.contains(words)),
            "expected a problem mentioning {words:?}, got {problems:?}"
        );
    };
    mentions(
        check_all(&broken("  RUST_LOG: warn\n", "  LOG_LEVEL: warn\n")),
        "does not set RUST_LOG",
    );
    mentions(
        check_all(&broken("  RUST_LOG: warn\n", "  LOG_LEVEL: warn\n")),
        "sets LOG_LEVEL",
    );
    mentions(
        check_all(&broken(
            "  name: threaded-blocking\n  namespace: bakeoff\nspec:\n  replicas: 1",
            "  name: threaded\n  namespace: bakeoff\nspec:\n  replicas: 1",
        )),
        "no Deployment for the variant threaded-blocking",
    );
    mentions(
        check_all(&broken(
            "          requests:\n            cpu: \"2\"\n            memory: 1Gi",
            "          requests:\n            cpu: \"1\"\n            memory: 1Gi",
        )),
        "cpu requests differ from its limits",
    );
    mentions(
        check_all(&broken(
            "        - --target=warp-diesel-async=http://warp-diesel-async:8000\n",
            "",
        )),
        "does not target warp-diesel-async",
    );
    mentions(
        check_all(&broken("        - --shards=3\n", "        - --shards=2\n")),
        "completions is not its --shards",
    );
    mentions(
        check_all(&broken(
            "              key: server-url\n",
            "              key: admin-url\n",
        )),
        "not the read-only role bakeoff_app",
    );
    // Placement: a load pod without its anti-affinity to the servers.
    let placed = build(&overlays()["three-roles"]);
    assert_eq!(check_all(&placed), Vec::<String>::new());
    let anti_affinity = "              matchLabels:\n                bakeoff/role: server\n";
    assert!(
        placed.contains(anti_affinity),
        "the build changed: update this test"
    );
    mentions(
        check_all(&placed.replacen(
            anti_affinity,
            "              matchLabels:\n                bakeoff/role: database\n",
            1,
        )),
        "may share a node with a server pod",
    );
}
