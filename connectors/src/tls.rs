//! TLS for the server connectors (PostgreSQL, MySQL/MariaDB), with rustls.
//!
//! Each connector reads its TLS settings from its connection URL, under the
//! parameter names its own database's clients use (`sslmode`, `sslrootcert`,
//! ... for PostgreSQL; `ssl-mode`, `ssl-ca`, ... for MySQL), and turns them
//! into one [`TlsOptions`]. The modes follow libpq's:
//!
//! | mode          | encrypted          | server certificate checked            |
//! |---------------|--------------------|---------------------------------------|
//! | `disable`     | no                 | -                                     |
//! | `prefer`      | if the server can  | only when a CA file is given          |
//! | `require`     | yes                | only when a CA file is given          |
//! | `verify-ca`   | yes                | chain to a trusted CA                 |
//! | `verify-full` | yes                | chain, and the host name or IP matches |
//!
//! Trusted CAs are the given CA file, or else the system's root
//! certificates. Certificate and key files are read (and checked) when the
//! connector is created, so a wrong path fails at startup, not at the first
//! query. Paths are used as given: relative paths are relative to the
//! working directory, as with `psql` and `mysql`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::error::{ConnectorError, Result};

/// How much TLS a connection insists on (libpq's `sslmode` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Plain TCP.
    #[default]
    Disable,
    /// TLS when the server offers it, plain TCP otherwise.
    Prefer,
    /// TLS or no connection.
    Require,
    /// TLS, and the server's certificate chains to a trusted CA.
    VerifyCa,
    /// As `VerifyCa`, and the certificate names the host connected to.
    VerifyFull,
}

impl TlsMode {
    /// libpq's spelling of the mode.
    pub fn name(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        }
    }
}

/// A client certificate and its private key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// The certificate (chain), leaf first.
    pub cert_file: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

impl ClientCert {
    /// The pair from a URL's certificate and key parameters (named
    /// `names`, e.g. "sslcert and sslkey"): both or neither.
    pub(crate) fn from_params(
        cert: Option<String>,
        key: Option<String>,
        names: &str,
    ) -> std::result::Result<Option<Self>, String> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(Self {
                cert_file: cert.into(),
                key_file: key.into(),
            })),
            (None, None) => Ok(None),
            _ => Err(format!("{names} go together: give both or neither")),
        }
    }
}

/// TLS settings of one connection URL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsOptions {
    /// How much TLS is required.
    pub mode: TlsMode,
    /// PEM file of the CAs to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// Certificate to present when the server asks for one.
    pub client_cert: Option<ClientCert>,
}

impl TlsOptions {
    /// Whether the server's certificate must chain to a trusted CA: always in
    /// the verify modes, and in `prefer`/`require` when a CA file is given
    /// (as libpq does).
    pub fn verifies_chain(&self) -> bool {
        match self.mode {
            TlsMode::Disable => false,
            TlsMode::Prefer | TlsMode::Require => self.ca_file.is_some(),
            TlsMode::VerifyCa | TlsMode::VerifyFull => true,
        }
    }

    /// Whether the certificate must name the host connected to.
    pub fn verifies_name(&self) -> bool {
        self.mode == TlsMode::VerifyFull
    }

    /// The trusted roots as DER certificates: the CA file's, or the system's.
    pub(crate) fn root_certs(&self, target: &str) -> Result<Vec<CertificateDer<'static>>> {
        match &self.ca_file {
            Some(path) => read_certs(path, "CA file", target),
            None => {
                let found = rustls_native_certs::load_native_certs();
                if found.certs.is_empty() {
                    return Err(config_error(
                        target,
                        format!(
                            "no system root certificates found ({} errors); name a CA file",
                            found.errors.len()
                        ),
                    ));
                }
                Ok(found.certs)
            }
        }
    }

    /// Reads and checks the client certificate and key, if any.
    pub(crate) fn client_identity(
        &self,
        target: &str,
    ) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>> {
        let Some(client) = &self.client_cert else {
            return Ok(None);
        };
        let certs = read_certs(&client.cert_file, "client certificate", target)?;
        let key = PrivateKeyDer::from_pem_file(&client.key_file).map_err(|e| {
            config_error(
                target,
                format!(
                    "cannot read the client key {}: {e}",
                    client.key_file.display()
                ),
            )
        })?;
        Ok(Some((certs, key)))
    }

    /// A rustls client configuration implementing these options.
    pub(crate) fn rustls_config(&self, target: &str) -> Result<ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = if self.verifies_chain() {
            let mut roots = RootCertStore::empty();
            let (_, ignored) = roots.add_parsable_certificates(self.root_certs(target)?);
            if roots.is_empty() {
                return Err(config_error(
                    target,
                    format!("none of the trusted CA certificates is usable ({ignored} rejected)"),
                ));
            }
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                    .build()
                    .map_err(|e| config_error(target, format!("TLS verifier: {e}")))?;
            if self.verifies_name() {
                webpki
            } else {
                Arc::new(ChainOnly(webpki))
            }
        } else {
            Arc::new(Unverified(Arc::clone(&provider)))
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error(target, format!("TLS protocol versions: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        match self.client_identity(target)? {
            Some((certs, key)) => builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| config_error(target, format!("client certificate or key: {e}"))),
            None => Ok(builder.with_no_client_auth()),
        }
    }
}

fn read_certs(path: &Path, what: &str, target: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| {
            config_error(
                target,
                format!("cannot read the {what} {}: {e}", path.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(config_error(
            target,
            format!("the {what} {} holds no PEM certificate", path.display()),
        ));
    }
    Ok(certs)
}

fn config_error(target: &str, message: String) -> ConnectorError {
    ConnectorError::Config {
        target: target.to_string(),
        message,
    }
}

/// Checks the chain but accepts any name (`verify-ca`).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        // The chain is checked before the name: a name error means the
        // chain was good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Encryption without authentication of the server (`prefer`/`require`
/// without a CA file): handshake signatures are still checked.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Splits `url`'s query string into the parameters named in `names`
/// (decoded, in order) and the URL without them. Other parameters stay
/// exactly as written.
pub(crate) fn take_url_params(url: &str, names: &[&str]) -> (String, Vec<(String, String)>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), Vec::new());
    };
    let mut taken = Vec::new();
    let mut kept = Vec::new();
    for segment in query.split('&').filter(|s| !s.is_empty()) {
        let decoded = url::form_urlencoded::parse(segment.as_bytes()).next();
        match decoded {
            Some((key, value)) if names.contains(&key.as_ref()) => {
                taken.push((key.into_owned(), value.into_owned()))
            }
            _ => kept.push(segment),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_params_are_taken_and_the_rest_kept_verbatim() {
        let (rest, taken) = take_url_params(
            "postgres://u:p%40ss@h:5/db?application_name=a%20b&sslmode=verify-full&sslrootcert=%2Ftmp%2Fca%20x.pem",
            &["sslmode", "sslrootcert"],
        );
        assert_eq!(rest, "postgres://u:p%40ss@h:5/db?application_name=a%20b");
        assert_eq!(
            taken,
            vec![
                ("sslmode".to_string(), "verify-full".to_string()),
                ("sslrootcert".to_string(), "/tmp/ca x.pem".to_string())
            ]
        );
        let (rest, taken) = take_url_params("mysql://h/db?ssl-mode=REQUIRED", &["ssl-mode"]);
        assert_eq!(rest, "mysql://h/db");
        assert_eq!(taken.len(), 1);
        let (rest, taken) = take_url_params("mysql://h/db", &["ssl-mode"]);
        assert_eq!((rest.as_str(), taken.len()), ("mysql://h/db", 0));
    }

    #[test]
    fn verification_follows_libpq() {
        let mut options = TlsOptions {
            mode: TlsMode::Require,
            ..TlsOptions::default()
        };
        assert!(!options.verifies_chain());
        options.ca_file = Some("ca.pem".into());
        assert!(options.verifies_chain() && !options.verifies_name());
        options.mode = TlsMode::VerifyFull;
        assert!(options.verifies_chain() && options.verifies_name());
        options.mode = TlsMode::Disable;
        assert!(!options.verifies_chain());
    }

    #[test]
    fn missing_files_are_named() {
        let options = TlsOptions {
            mode: TlsMode::VerifyCa,
            ca_file: Some("/nonexistent/ca.pem".into()),
            client_cert: None,
        };
        let e = options.rustls_config("h:1/db").err().map(|e| e.to_string());
        let e = e.unwrap_or_default();
        assert!(
            e.contains("/nonexistent/ca.pem") && e.contains("h:1/db"),
            "{e}"
        );
    }
}
