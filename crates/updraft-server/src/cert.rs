//! `updraft cert`: a local certificate authority and a server certificate for given host names, for development
//! and tests. Clients trust the CA once (`NODE_EXTRA_CA_CERTS`, the system store); certificates made later for
//! other names are signed by the same CA, so they are trusted too.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Where the files went.
#[derive(Debug)]
pub struct Issued {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Whether the CA was made now (rather than found in the directory).
    pub new_ca: bool,
}

/// Makes (or reuses) `dir/ca.pem` and `dir/ca-key.pem`, and writes `dir/cert.pem` and `dir/key.pem` for `names`
/// (host names or IP addresses).
pub fn issue(dir: &Path, names: &[String]) -> anyhow::Result<Issued> {
    anyhow::ensure!(!names.is_empty(), "name at least one host");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (ca_path, ca_key_path) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
    let new_ca = !(ca_path.exists() && ca_key_path.exists());
    let ca_key = if new_ca {
        let key = KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        write(&ca_path, &cert.pem(), false)?;
        write(&ca_key_path, &key.serialize_pem(), true)?;
        key
    } else {
        let key_pem =
            std::fs::read_to_string(&ca_key_path).with_context(|| format!("reading {}", ca_key_path.display()))?;
        KeyPair::from_pem(&key_pem).context("reading the CA key")?
    };
    // The issuer is named and keyed as the CA certificate is, which is all a chain needs of it.
    let issuer = Issuer::new(ca_params()?, ca_key);

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.to_vec())?;
    params.distinguished_name = name(&names[0]);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    // Within the 398 days browsers accept for a server certificate.
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = params.not_before + time::Duration::days(397);
    let cert = params.signed_by(&key, &issuer)?;
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    write(&cert_path, &cert.pem(), false)?;
    write(&key_path, &key.serialize_pem(), true)?;
    Ok(Issued { ca: ca_path, cert: cert_path, key: key_path, new_ca })
}

fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.distinguished_name = name("Updraft development CA");
    // rcgen's defaults date from 1975; a day's slack covers clocks a little behind.
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = params.not_before + time::Duration::days(3650);
    Ok(params)
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name.push(DnType::OrganizationName, "Updraft");
    name
}

/// Writes a file; keys are readable by their owner only.
fn write(path: &Path, text: &str, secret: bool) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true).mode(if secret { 0o600 } else { 0o644 });
    let mut file = options.open(path).with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_certificate_is_signed_by_the_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        let first = issue(dir.path(), &["eds.localtest".into(), "127.0.0.1".into()]).unwrap();
        assert!(first.new_ca);
        let ca = std::fs::read_to_string(&first.ca).unwrap();
        let second = issue(dir.path(), &["mar.localtest".into()]).unwrap();
        assert!(!second.new_ca);
        assert_eq!(std::fs::read_to_string(&second.ca).unwrap(), ca, "the CA is kept");
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&second.key).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        assert!(issue(dir.path(), &[]).is_err());
    }
}
