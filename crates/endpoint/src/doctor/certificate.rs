//! What the doctor shows of a presented certificate: subject, issuer, names (SANs) and
//! validity, read from its DER. Like [`crate::cert_issuer`] it reads only what it shows and
//! gives up quietly (`None`) on anything unexpected: the certificate is untrusted input.

use std::net::IpAddr;

use crate::cert_issuer::{expect, name_summary, read_tlv};

const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
const BOOLEAN: u8 = 0x01;
const EXPLICIT_VERSION: u8 = 0xA0;
const EXTENSIONS: u8 = 0xA3;
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1D, 0x11];
const DNS_NAME: u8 = 0x82;
const IP_ADDRESS: u8 = 0x87;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateDetails {
    pub subject: Option<String>,
    pub issuer: Option<String>,
    /// DNS names and IP addresses of the subject alternative name extension.
    pub names: Vec<String>,
    /// `notBefore` and `notAfter` as written (`YYMMDDhhmmssZ` or `YYYYMMDDhhmmssZ`), shown
    /// as `YYYY-MM-DD`.
    pub not_before: Option<String>,
    pub not_after: Option<String>,
}

impl CertificateDetails {
    /// Whether `host` is among the names: exactly, or under a `*.` wildcard of one label.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.names.iter().any(|name| {
            let name = name.to_ascii_lowercase();
            match name.strip_prefix("*.") {
                Some(parent) => host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
                None => name == host,
            }
        })
    }

    /// One line: `subject CN=…, issuer CN=…, names a, b, valid 2025-01-01 to 2026-01-01`.
    pub fn summary(&self) -> String {
        let or_unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| "(unreadable)".into());
        let names = if self.names.is_empty() {
            "(none)".to_string()
        } else {
            self.names.join(", ")
        };
        format!(
            "subject {}, issuer {}, names {}, valid {} to {}",
            or_unknown(&self.subject),
            or_unknown(&self.issuer),
            names,
            or_unknown(&self.not_before),
            or_unknown(&self.not_after)
        )
    }
}

/// Reads the details of a DER certificate; `None` when its outer structure is unreadable.
pub fn read(cert_der: &[u8]) -> Option<CertificateDetails> {
    let (certificate, _) = expect(cert_der, SEQUENCE)?;
    let (mut tbs, _) = expect(certificate, SEQUENCE)?;
    if tbs.first() == Some(&EXPLICIT_VERSION) {
        tbs = read_tlv(tbs)?.2;
    }
    let after_serial = read_tlv(tbs)?.2;
    let after_algorithm = expect(after_serial, SEQUENCE)?.1;
    let (issuer, rest) = expect(after_algorithm, SEQUENCE)?;
    let (validity, rest) = expect(rest, SEQUENCE)?;
    let (subject, rest) = expect(rest, SEQUENCE)?;
    let (_public_key, mut rest) = expect(rest, SEQUENCE)?;
    let (not_before, after) = time(validity).unzip();
    let not_after = after.and_then(time).map(|(t, _)| t);
    let mut names = Vec::new();
    // Optional issuer and subject unique ids ([1], [2]) come before the extensions.
    while let Some((tag, content, after)) = read_tlv(rest) {
        if tag == EXTENSIONS {
            names = alt_names(content).unwrap_or_default();
        }
        rest = after;
    }
    Some(CertificateDetails {
        subject: name_summary(subject),
        issuer: name_summary(issuer),
        names,
        not_before,
        not_after,
    })
}

/// A UTCTime or GeneralizedTime as `YYYY-MM-DD`, and what follows it.
fn time(input: &[u8]) -> Option<(String, &[u8])> {
    let (tag, content, rest) = read_tlv(input)?;
    let text = std::str::from_utf8(content).ok()?;
    let digits = |s: &str| s.len() >= 2 && s.bytes().all(|b| b.is_ascii_digit());
    let (year, rest_text) = match tag {
        0x17 => {
            let yy: u32 = text.get(..2).filter(|s| digits(s))?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, text.get(2..)?)
        }
        0x18 => (
            text.get(..4).filter(|s| digits(s))?.parse().ok()?,
            text.get(4..)?,
        ),
        _ => return None,
    };
    let month = rest_text.get(..2).filter(|s| digits(s))?;
    let day = rest_text.get(2..4).filter(|s| digits(s))?;
    Some((format!("{year:04}-{month}-{day}"), rest))
}

/// The DNS names and IP addresses of the subject alternative name extension, if any.
fn alt_names(explicit: &[u8]) -> Option<Vec<String>> {
    let (mut extensions, _) = expect(explicit, SEQUENCE)?;
    while !extensions.is_empty() {
        let (extension, rest) = expect(extensions, SEQUENCE)?;
        extensions = rest;
        let (oid, mut value) = expect(extension, OID)?;
        if oid != SUBJECT_ALT_NAME {
            continue;
        }
        if value.first() == Some(&BOOLEAN) {
            value = read_tlv(value)?.2;
        }
        let (octets, _) = expect(value, OCTET_STRING)?;
        let (mut general_names, _) = expect(octets, SEQUENCE)?;
        let mut names = Vec::new();
        while !general_names.is_empty() {
            let (tag, content, rest) = read_tlv(general_names)?;
            general_names = rest;
            match (tag, content.len()) {
                (DNS_NAME, _) => names.push(
                    String::from_utf8_lossy(content)
                        .chars()
                        .filter(|c| !c.is_control())
                        .take(255)
                        .collect(),
                ),
                (IP_ADDRESS, 4) => {
                    let octets: [u8; 4] = content.try_into().ok()?;
                    names.push(IpAddr::from(octets).to_string());
                }
                (IP_ADDRESS, 16) => {
                    let octets: [u8; 16] = content.try_into().ok()?;
                    names.push(IpAddr::from(octets).to_string());
                }
                _ => {}
            }
        }
        return Some(names);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_subject_issuer_names_and_validity() {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name = rcgen::DistinguishedName::new();
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Corp Inspection CA");
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut leaf = rcgen::CertificateParams::new(vec![
            "wss.eu1.vpnrts.example.com".to_string(),
            "*.eu1.example.com".to_string(),
            "127.0.0.1".to_string(),
        ])
        .unwrap();
        leaf.distinguished_name = rcgen::DistinguishedName::new();
        leaf.distinguished_name
            .push(rcgen::DnType::CommonName, "wss.eu1.vpnrts.example.com");
        leaf.not_before = rcgen::date_time_ymd(2025, 1, 2);
        leaf.not_after = rcgen::date_time_ymd(2061, 3, 4);
        let der = leaf.signed_by(&key, &ca, &ca_key).unwrap().der().to_vec();

        let details = read(&der).unwrap();
        assert_eq!(
            details.subject.as_deref(),
            Some("CN=wss.eu1.vpnrts.example.com")
        );
        assert_eq!(details.issuer.as_deref(), Some("CN=Corp Inspection CA"));
        assert_eq!(
            details.names,
            [
                "wss.eu1.vpnrts.example.com",
                "*.eu1.example.com",
                "127.0.0.1"
            ]
        );
        assert_eq!(details.not_before.as_deref(), Some("2025-01-02"));
        assert_eq!(details.not_after.as_deref(), Some("2061-03-04"));
        assert!(details.matches("WSS.eu1.vpnrts.example.com"));
        assert!(details.matches("gateway.eu1.example.com"));
        assert!(!details.matches("a.b.eu1.example.com"));
        assert!(!details.matches("connectivity.eu1.vpnrts.example.com"));
        assert!(details.summary().contains("valid 2025-01-02 to 2061-03-04"));
        for cut in [0, 5, 60] {
            assert_eq!(read(&der[..cut]), None);
        }
    }
}
