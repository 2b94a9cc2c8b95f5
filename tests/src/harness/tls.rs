//! A throwaway certificate authority for TLS tests (rcgen): a CA, server
//! certificates for the names a test chooses, and client certificates whose
//! common name is a database user. Everything lives in a temporary
//! directory removed on drop.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

use super::{io, HarnessError, Result};

/// A certificate and its private key, PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The certificate.
    pub cert: PathBuf,
    /// Its private key (PKCS#8).
    pub key: PathBuf,
}

/// A test CA. Certificates it issues chain to [`TestCa::ca_file`].
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    ca_file: PathBuf,
    dir: tempfile::TempDir,
    issued: usize,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

fn rcgen_error(what: &str) -> impl FnOnce(rcgen::Error) -> HarnessError + '_ {
    move |e| HarnessError::Command {
        what: format!("make the {what}"),
        detail: e.to_string(),
    }
}

impl TestCa {
    /// A new CA whose certificate's common name is `name`.
    pub fn new(name: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("spar-ca-")
            .tempdir()
            .map_err(io("create a temp dir"))?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(rcgen_error("CA certificate"))?;
        params.distinguished_name = common_name(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().map_err(rcgen_error("CA key"))?;
        let issuer =
            CertifiedIssuer::self_signed(params, key).map_err(rcgen_error("CA certificate"))?;
        let ca_file = dir.path().join("ca.pem");
        write(&ca_file, &issuer.pem())?;
        Ok(Self {
            issuer,
            ca_file,
            dir,
            issued: 0,
        })
    }

    /// The CA's certificate (PEM): what clients trust.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// A server certificate valid for `names` (DNS names or IP addresses).
    pub fn server_cert(&mut self, names: &[&str]) -> Result<CertFiles> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params =
            CertificateParams::new(names.clone()).map_err(rcgen_error("server certificate"))?;
        params.distinguished_name = common_name(names.first().map_or("server", String::as_str));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, "server")
    }

    /// A client certificate whose common name is `user` (PostgreSQL's
    /// `cert` authentication maps it to the role of that name).
    pub fn client_cert(&mut self, user: &str) -> Result<CertFiles> {
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(rcgen_error("client certificate"))?;
        params.distinguished_name = common_name(user);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, "client")
    }

    fn issue(&mut self, mut params: CertificateParams, kind: &str) -> Result<CertFiles> {
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().map_err(rcgen_error("key"))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(rcgen_error("certificate"))?;
        self.issued += 1;
        let files = CertFiles {
            cert: self.dir.path().join(format!("{kind}-{}.pem", self.issued)),
            key: self.dir.path().join(format!("{kind}-{}.key", self.issued)),
        };
        write(&files.cert, &cert.pem())?;
        write(&files.key, &key.serialize_pem())?;
        Ok(files)
    }
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

fn write(path: &Path, pem: &str) -> Result<()> {
    std::fs::write(path, pem).map_err(io(format!("write {}", path.display())))
}
