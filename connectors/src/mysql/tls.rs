//! MySQL's TLS parameters, named as the `mysql` client names them.
//!
//! In the URL (`mysql://u@h/db?ssl-mode=VERIFY_IDENTITY&ssl-ca=/etc/ca.pem`),
//! with `_` accepted for `-`:
//!
//! - `ssl-mode`: `DISABLED`, `REQUIRED`, `VERIFY_IDENTITY` (any case).
//!   Without it TLS is off, unless `ssl-ca` is given, which means
//!   `VERIFY_IDENTITY`. `PREFERRED` is refused: it falls back to plain text
//!   without saying so, and mysql_async has no such mode. `VERIFY_CA` is
//!   refused for now: mysql_async 0.37.1 checks the host name even when
//!   told not to (blackbeam/mysql_async#404, fixed upstream but not
//!   released), so it would act as `VERIFY_IDENTITY` with a confusing error;
//! - `ssl-ca`: PEM file of trusted CAs (default: the system's roots);
//! - `ssl-cert` and `ssl-key`: client certificate and key, both or neither.
//!
//! They map onto [`TlsOptions`] (`REQUIRED` is `require`, `VERIFY_IDENTITY`
//! is `verify-full`), so the checks are those of [`crate::tls`]. mysql_async's
//! own `require_ssl`, `verify_ca`, ... still work when `ssl-mode` and its
//! companions are absent.

use mysql_async::{ClientIdentity, SslOpts};

use crate::error::{ConnectorError, Result};
use crate::tls::{take_url_params, ClientCert, TlsMode, TlsOptions};

const PARAMS: [&str; 8] = [
    "ssl-mode", "ssl_mode", "ssl-ca", "ssl_ca", "ssl-cert", "ssl_cert", "ssl-key", "ssl_key",
];

/// Splits a URL into the part mysql_async parses and its TLS options;
/// `None` when the URL names none of the parameters above.
pub(crate) fn split_tls_options(url: &str) -> Result<(String, Option<TlsOptions>)> {
    let (rest, params) = take_url_params(url, &PARAMS);
    if params.is_empty() {
        return Ok((rest, None));
    }
    let error = |message: String| ConnectorError::Config {
        target: crate::error::redact_url(url),
        message,
    };
    let (mut mode, mut ca, mut cert, mut key) = (None, None, None, None);
    for (name, value) in params {
        match &name.replace('_', "-")[..] {
            "ssl-mode" => {
                mode = Some(match value.to_ascii_uppercase().as_str() {
                    "DISABLED" => TlsMode::Disable,
                    "REQUIRED" => TlsMode::Require,
                    "VERIFY_CA" => {
                        return Err(error(
                            "ssl-mode VERIFY_CA is not available with this MySQL driver (mysql_async \
                             0.37.1 checks the host name anyway, blackbeam/mysql_async#404); use \
                             VERIFY_IDENTITY with a certificate that names the host, or REQUIRED"
                                .into(),
                        ))
                    }
                    "VERIFY_IDENTITY" => TlsMode::VerifyFull,
                    "PREFERRED" => {
                        return Err(error(
                            "ssl-mode PREFERRED is not supported (it falls back to an unencrypted \
                             connection silently); use REQUIRED, VERIFY_CA, VERIFY_IDENTITY or DISABLED"
                                .into(),
                        ))
                    }
                    other => {
                        return Err(error(format!(
                            "ssl-mode `{other}` is not one of DISABLED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY"
                        )))
                    }
                })
            }
            "ssl-ca" => ca = Some(value),
            "ssl-cert" => cert = Some(value),
            _ => key = Some(value),
        }
    }
    let client_cert = ClientCert::from_params(cert, key, "ssl-cert and ssl-key").map_err(error)?;
    let mode = mode.unwrap_or(if ca.is_some() {
        TlsMode::VerifyFull
    } else {
        TlsMode::Disable
    });
    let options = TlsOptions {
        mode,
        ca_file: ca.map(Into::into),
        client_cert,
    };
    Ok((rest, Some(options)))
}

/// mysql_async's settings for `options` (`None`: plain TCP). Reads and
/// checks every file now, so that a wrong path fails at startup.
pub(crate) fn ssl_opts(options: &TlsOptions, target: &str) -> Result<Option<SslOpts>> {
    if options.mode == TlsMode::Disable {
        return Ok(None);
    }
    // mysql_async builds its rustls configuration with the process-wide
    // crypto provider: make sure there is one (ring, as for PostgreSQL). An
    // error only means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut ssl = SslOpts::default()
        // Only our roots when verifying; mysql_async needs some roots to
        // build its (then unused) verifier otherwise.
        .with_disable_built_in_roots(options.verifies_chain())
        .with_danger_accept_invalid_certs(!options.verifies_chain())
        .with_danger_skip_domain_validation(!options.verifies_name());
    if options.verifies_chain() {
        let roots = options
            .root_certs(target)?
            .into_iter()
            .map(|der| der.to_vec().into())
            .collect();
        ssl = ssl.with_root_certs(roots);
    }
    if let Some(client) = &options.client_cert {
        // Parse them once here for a clear error; mysql_async reads the
        // files again on every connection.
        options.client_identity(target)?;
        ssl = ssl.with_client_identity(Some(ClientIdentity::new(
            client.cert_file.clone().into(),
            client.key_file.clone().into(),
        )));
    }
    Ok(Some(ssl))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> std::result::Result<(String, Option<TlsOptions>), String> {
        split_tls_options(url).map_err(|e| e.to_string())
    }

    #[test]
    fn modes_and_defaults() {
        assert_eq!(
            split("mysql://u@h/db?pool_min=1"),
            Ok(("mysql://u@h/db?pool_min=1".to_string(), None))
        );
        let Ok((rest, Some(options))) = split("mysql://u@h/db?ssl_mode=verify_identity&pool_min=1")
        else {
            panic!("verify_identity parses");
        };
        assert_eq!(rest, "mysql://u@h/db?pool_min=1");
        assert_eq!(options.mode, TlsMode::VerifyFull);
        let Ok((_, Some(options))) = split("mysql://u@h/db?ssl-ca=/ca.pem") else {
            panic!("ssl-ca parses");
        };
        assert_eq!(options.mode, TlsMode::VerifyFull);
    }

    #[test]
    fn refusals_say_why() {
        let e = split("mysql://u:hunter2@h/db?ssl-mode=PREFERRED")
            .err()
            .unwrap_or_default();
        assert!(
            e.contains("PREFERRED is not supported") && !e.contains("hunter2"),
            "{e}"
        );
        let e = split("mysql://h/db?ssl-mode=verify_ca")
            .err()
            .unwrap_or_default();
        assert!(e.contains("VERIFY_CA is not available"), "{e}");
        let e = split("mysql://h/db?ssl-mode=yes").err().unwrap_or_default();
        assert!(e.contains("ssl-mode `YES`"), "{e}");
        let e = split("mysql://h/db?ssl-key=/k.pem")
            .err()
            .unwrap_or_default();
        assert!(e.contains("ssl-cert and ssl-key"), "{e}");
    }
}
