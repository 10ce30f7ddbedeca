//! Offline validation of `deploy/`: every Kubernetes overlay, the compose file, the CI/CD
//! workflow and the Dockerfile (`deploy/validate.sh`, see deploy/README.md), plus proof that the
//! validator rejects what it is meant to reject.
//!
//! Needs `bash`, `python3` with `kubernetes-validate` (`.ci/run` installs it) and `kubectl`.
//! A missing tool fails the test with the command that installs it: it never passes silently.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const INSTALL_VALIDATE: &str = "python3 -m pip install 'kubernetes-validate==1.37.0'";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Exit status deploy/validate.{sh,py} use for "a required tool is missing".
const MISSING_TOOL: i32 = 3;

fn require_tool(program: &str, args: &[&str], install: &str) {
    match Command::new(program).args(args).output() {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "`{program} {}` failed ({}); install it: {install}\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(error) => {
            panic!("`{program}` is required by deploy/validate.sh but cannot be run ({error}); install it: {install}")
        }
    }
}

fn require_tools() {
    require_tool("bash", &["--version"], "apt-get install bash");
    require_tool("python3", &["--version"], "apt-get install python3 python3-pip");
    require_tool(
        "kubectl",
        &["version", "--client"],
        "see https://kubernetes.io/docs/tasks/tools/ (kubectl renders the kustomize overlays)",
    );
    require_tool("python3", &["-c", "import kubernetes_validate, yaml"], INSTALL_VALIDATE);
}

fn run(command: &mut Command) -> (Output, String) {
    let output = command.current_dir(repo()).output().expect("spawn the validator");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if output.status.code() == Some(MISSING_TOOL) {
        panic!("deploy validation cannot run, a tool is missing (install: {INSTALL_VALIDATE}):\n{text}");
    }
    (output, text)
}

#[test]
fn every_deploy_manifest_passes_offline_validation() {
    require_tools();
    let (output, text) = run(Command::new("bash").arg("deploy/validate.sh"));
    assert!(output.status.success(), "deploy/validate.sh failed ({}):\n{text}", output.status);
    for expected in [
        "overlay dev:",
        "overlay prod:",
        "Deployment (schema 1.29.0)",
        "Cluster (CRD checker)",
        "PrometheusRule (CRD checker)",
        "render.sh pins every container",
        "deploy/compose.yaml:",
        ".github/workflows/ci-cd.yaml:",
        "deploy/Dockerfile:",
        "validate: all checks passed",
    ] {
        assert!(text.contains(expected), "validator output lacks {expected:?}:\n{text}");
    }
}

/// A manifest breaking one rule per line below: each must be reported, and the run must fail.
const UNSAFE_MANIFESTS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: agora-query
spec:
  selector:
    matchLabels: {app.kubernetes.io/name: agora, app.kubernetes.io/component: query}
  template:
    metadata:
      labels: {app.kubernetes.io/name: agora, app.kubernetes.io/component: query}
    spec:
      containers:
        - name: agora
          image: ghcr.io/example/agora:latest
          args: ["query"]
          env:
            - name: JWT_SECRET
              value: not-a-secret-reference
          securityContext:
            readOnlyRootFilesystem: false
            runAsNonRoot: true
            privilegd: false
---
apiVersion: v1
kind: Secret
metadata:
  name: agora-secrets
stringData:
  JWT_SECRET: committed-by-mistake
---
apiVersion: postgresql.cnpg.io/v1
kind: Cluster
metadata:
  name: agora-db
spec:
  instances: 3
  postgresql:
    parameters:
      max_connections: 200
---
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: agora
spec:
  groups:
    - name: agora
      rules:
        - alert: NoExpression
          labels: {severity: page}
"#;

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn validator_rejects_unsafe_manifests() {
    require_tools();
    let file = TempFile(std::env::temp_dir().join(format!("agora-unsafe-manifests-{}.yaml", std::process::id())));
    std::fs::write(&file.0, UNSAFE_MANIFESTS).expect("write the fixture");
    let (output, text) = run(Command::new("python3").arg("deploy/validate.py").arg("--manifests").arg(&file.0));
    assert_eq!(output.status.code(), Some(1), "the validator must fail on unsafe manifests:\n{text}");
    for expected in [
        "'privilegd' was unexpected",                     // Kubernetes schema, strict
        "image uses :latest",                             // images
        "readinessProbe is required",                     // probes
        "resources need requests.cpu",                    // resources
        "readOnlyRootFilesystem must be true",            // security context
        "capabilities.drop must include ALL",             //
        "seccompProfile must be RuntimeDefault",          //
        "JWT_SECRET carries a literal value",             // secrets
        "Secret/agora-secrets carries values",            //
        "spec.storage.size (or pvcTemplate) is required", // CloudNativePG checker
        "max_connections must be a string",               //
        "rule NoExpression: expr is required",            // PrometheusRule checker
        "labels.severity must be",                        //
        "no default deny",                                // NetworkPolicies
        "agora-projector: must run exactly 2 replicas",   // roles
        "migration Job",                                  //
    ] {
        assert!(text.contains(expected), "validator did not report {expected:?}:\n{text}");
    }
}
