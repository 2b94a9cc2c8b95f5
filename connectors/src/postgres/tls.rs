//! PostgreSQL's TLS parameters, named as libpq names them.
//!
//! In a URL (`postgres://...?sslmode=verify-full&sslrootcert=/etc/ca.pem`)
//! or key=value connection string (`host=h sslmode=require`):
//!
//! - `sslmode`: `disable`, `prefer` (the default, as in libpq), `require`,
//!   `verify-ca`, `verify-full`; see [`crate::tls`] for what each checks;
//! - `sslrootcert`: PEM file of trusted CAs (`system`: the system's roots,
//!   also the default);
//! - `sslcert` and `sslkey`: client certificate and key, both or neither.
//!
//! tokio-postgres knows only some of these, so they are taken out of the
//! connection string before it is parsed.

use crate::error::{ConnectorError, Result};
use crate::tls::{take_url_params, ClientCert, TlsMode, TlsOptions};

const PARAMS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// Splits a connection string into the part tokio-postgres parses and its
/// TLS options.
pub(crate) fn split_tls_options(url: &str) -> Result<(String, TlsOptions)> {
    let (rest, params) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        take_url_params(url, &PARAMS)
    } else {
        take_key_value_params(url, &PARAMS)
    };
    let error = |message: String| ConnectorError::Config {
        target: crate::error::redact_url(url),
        message,
    };
    let mut options = TlsOptions {
        mode: TlsMode::Prefer,
        ..TlsOptions::default()
    };
    let (mut cert, mut key) = (None, None);
    for (name, value) in params {
        match name.as_str() {
            "sslmode" => {
                options.mode = match value.as_str() {
                    "disable" => TlsMode::Disable,
                    "prefer" => TlsMode::Prefer,
                    "require" => TlsMode::Require,
                    "verify-ca" => TlsMode::VerifyCa,
                    "verify-full" => TlsMode::VerifyFull,
                    other => {
                        return Err(error(format!(
                            "sslmode `{other}` is not one of disable, prefer, require, verify-ca, verify-full"
                        )))
                    }
                }
            }
            "sslrootcert" if value == "system" => options.ca_file = None,
            "sslrootcert" => options.ca_file = Some(value.into()),
            "sslcert" => cert = Some(value),
            _ => key = Some(value),
        }
    }
    options.client_cert =
        ClientCert::from_params(cert, key, "sslcert and sslkey").map_err(error)?;
    Ok((rest, options))
}

/// Takes the named parameters out of a libpq key=value string. Values may
/// be single-quoted; backslash escapes the next character. A string that
/// does not parse is returned whole, for tokio-postgres to report.
fn take_key_value_params(s: &str, names: &[&str]) -> (String, Vec<(String, String)>) {
    let Some(pairs) = parse_key_values(s) else {
        return (s.to_string(), Vec::new());
    };
    let (taken, kept): (Vec<_>, Vec<_>) = pairs
        .into_iter()
        .partition(|(k, _)| names.contains(&k.as_str()));
    let rest = kept
        .iter()
        .map(|(k, v)| format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'")))
        .collect::<Vec<_>>()
        .join(" ");
    (rest, taken)
}

fn parse_key_values(s: &str) -> Option<Vec<(String, String)>> {
    let mut chars = s.chars().peekable();
    let mut pairs = Vec::new();
    let skip_space = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
    };
    loop {
        skip_space(&mut chars);
        if chars.peek().is_none() {
            return Some(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        skip_space(&mut chars);
        chars.next_if_eq(&'=')?;
        skip_space(&mut chars);
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next()? {
                    '\\' => value.push(chars.next()?),
                    '\'' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.push(chars.next()?);
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_and_key_value_forms() {
        let (rest, options) = split_tls_options(
            "postgres://u@h:5/db?sslmode=verify-full&sslrootcert=/ca.pem&connect_timeout=3",
        )
        .unwrap_or_default();
        assert_eq!(rest, "postgres://u@h:5/db?connect_timeout=3");
        assert_eq!(options.mode, TlsMode::VerifyFull);
        assert_eq!(options.ca_file.as_deref(), Some("/ca.pem".as_ref()));

        let (rest, options) = split_tls_options(
            "host=h dbname = 'my db' sslmode=verify-ca sslcert='/c d.pem' sslkey=/k\\ x.pem",
        )
        .unwrap_or_default();
        assert_eq!(rest, "host='h' dbname='my db'");
        assert_eq!(options.mode, TlsMode::VerifyCa);
        let cert = options.client_cert.unwrap_or_else(|| ClientCert {
            cert_file: "".into(),
            key_file: "".into(),
        });
        assert_eq!(cert.cert_file.to_str(), Some("/c d.pem"));
        assert_eq!(cert.key_file.to_str(), Some("/k x.pem"));

        // No parameters: prefer, as libpq.
        let (_, options) = split_tls_options("host=h").unwrap_or_default();
        assert_eq!(options.mode, TlsMode::Prefer);
        // Quotes and backslashes survive the rewrite.
        let (rest, _) =
            split_tls_options(r"password='it\'s \\x' sslmode=disable").unwrap_or_default();
        assert_eq!(
            parse_key_values(&rest),
            Some(vec![("password".into(), r"it's \x".into())])
        );
    }

    #[test]
    fn bad_values_are_config_errors_without_the_password() {
        let e = split_tls_options("postgres://u:hunter2@h/db?sslmode=verify")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("sslmode `verify`") && !e.contains("hunter2"),
            "{e}"
        );
        let e = split_tls_options("postgres://h/db?sslcert=/c.pem")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("sslcert and sslkey"), "{e}");
    }
}
