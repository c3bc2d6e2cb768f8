//! Credentials of the local control plane: a CA, the apiserver's serving certificate, the
//! ServiceAccount signing key and a static admin token.

use std::io::Read;
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use super::DevError;

/// Where the credentials were written.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// PEM of the CA that signed the serving certificate (the kubeconfig's CA).
    pub ca_pem: String,
    /// The CA certificate file.
    pub ca_file: PathBuf,
    /// The apiserver's serving certificate and key.
    pub serving_cert: PathBuf,
    /// The apiserver's serving key.
    pub serving_key: PathBuf,
    /// The ServiceAccount token signing key.
    pub service_account_key: PathBuf,
    /// Its public half, which the apiserver verifies tokens with.
    pub service_account_public_key: PathBuf,
    /// The static token file (`token,user,uid,"groups"`).
    pub token_file: PathBuf,
    /// The admin bearer token.
    pub admin_token: String,
}

/// Generates fresh credentials into `dir`.
pub fn generate(dir: &Path) -> Result<Credentials, DevError> {
    let cert_err = |e: rcgen::Error| DevError::Certificates(e.to_string());
    std::fs::create_dir_all(dir).map_err(|e| DevError::io(dir, e))?;

    let ca_key = KeyPair::generate().map_err(cert_err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
    ca_params.distinguished_name.push(DnType::CommonName, "wasmray-dev-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(cert_err)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let serving_key = KeyPair::generate().map_err(cert_err)?;
    let mut serving_params = CertificateParams::new(vec![
        "127.0.0.1".to_string(),
        "localhost".to_string(),
        "kubernetes".to_string(),
        "kubernetes.default".to_string(),
        "kubernetes.default.svc".to_string(),
        "10.0.0.1".to_string(),
    ])
    .map_err(cert_err)?;
    serving_params.distinguished_name.push(DnType::CommonName, "kube-apiserver");
    let serving_cert = serving_params.signed_by(&serving_key, &issuer).map_err(cert_err)?;

    let service_account_key = KeyPair::generate().map_err(cert_err)?;
    let admin_token = random_token()?;

    let files = Credentials {
        ca_pem: ca_cert.pem(),
        ca_file: dir.join("ca.crt"),
        serving_cert: dir.join("apiserver.crt"),
        serving_key: dir.join("apiserver.key"),
        service_account_key: dir.join("sa.key"),
        service_account_public_key: dir.join("sa.pub"),
        token_file: dir.join("tokens.csv"),
        admin_token,
    };
    write(&files.ca_file, &files.ca_pem)?;
    write(&files.serving_cert, &serving_cert.pem())?;
    write(&files.serving_key, &serving_key.serialize_pem())?;
    write(&files.service_account_key, &service_account_key.serialize_pem())?;
    write(&files.service_account_public_key, &service_account_key.public_key_pem())?;
    write(&files.token_file, &format!("{},wasmray-admin,wasmray-admin,\"system:masters\"\n", files.admin_token))?;
    Ok(files)
}

fn write(path: &Path, body: &str) -> Result<(), DevError> {
    std::fs::write(path, body).map_err(|e| DevError::io(path, e))
}

fn random_token() -> Result<String, DevError> {
    let path = Path::new("/dev/urandom");
    let mut bytes = [0u8; 24];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut bytes)).map_err(|e| DevError::io(path, e))?;
    Ok(hex::encode(bytes))
}
