//! Reads the issuer's name out of a DER certificate, for the message that reports a
//! TLS-inspecting proxy ("issued by CN=Corp Inspection CA"). Only as much DER as that needs;
//! the certificate is untrusted, so every length is checked and any surprise gives `None`.

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const EXPLICIT_VERSION: u8 = 0xA0;

/// Attribute types shown, in the order of RFC 4514 strings: CN, OU, O.
const NAMED_ATTRIBUTES: [(&[u8], &str); 3] = [
    (&[0x55, 0x04, 0x03], "CN"),
    (&[0x55, 0x04, 0x0B], "OU"),
    (&[0x55, 0x04, 0x0A], "O"),
];
const MAX_SHOWN: usize = 200;

/// The issuer as `CN=…, OU=…, O=…`, or `None` when the certificate cannot be read or its
/// issuer has none of those attributes.
pub fn issuer_summary(cert_der: &[u8]) -> Option<String> {
    let (certificate, _) = expect(cert_der, SEQUENCE)?;
    let (mut tbs, _) = expect(certificate, SEQUENCE)?;
    if tbs.first() == Some(&EXPLICIT_VERSION) {
        tbs = read_tlv(tbs)?.2;
    }
    let after_serial = read_tlv(tbs)?.2;
    let after_algorithm = expect(after_serial, SEQUENCE)?.1;
    let (issuer, _) = expect(after_algorithm, SEQUENCE)?;
    name_summary(issuer)
}

/// A distinguished name's content (the RDN sequence) as `CN=…, OU=…, O=…`.
pub(crate) fn name_summary(issuer: &[u8]) -> Option<String> {
    let mut found: Vec<(usize, String)> = Vec::new();
    let mut rdns = issuer;
    while !rdns.is_empty() {
        let (rdn, rest) = expect(rdns, SET)?;
        rdns = rest;
        let mut attributes = rdn;
        while !attributes.is_empty() {
            let (attribute, rest) = expect(attributes, SEQUENCE)?;
            attributes = rest;
            let (oid, value) = expect(attribute, OID)?;
            let (value_tag, value, _) = read_tlv(value)?;
            if let Some(rank) = NAMED_ATTRIBUTES.iter().position(|(o, _)| *o == oid) {
                if let Some(text) = string_value(value_tag, value) {
                    found.push((rank, text));
                }
            }
        }
    }
    found.sort_by_key(|(rank, _)| *rank);
    let summary = found
        .iter()
        .map(|(rank, text)| format!("{}={}", NAMED_ATTRIBUTES[*rank].1, text))
        .collect::<Vec<_>>()
        .join(", ");
    (!summary.is_empty()).then(|| summary.chars().take(MAX_SHOWN).collect())
}

/// The string types a name uses; BMP and universal strings are rare and left out.
fn string_value(tag: u8, value: &[u8]) -> Option<String> {
    match tag {
        // UTF8String, PrintableString, TeletexString (read as Latin-ish), IA5String
        0x0C | 0x13 | 0x14 | 0x16 => Some(
            String::from_utf8_lossy(value)
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect(),
        ),
        _ => None,
    }
}

/// The content of a TLV with the given tag, and what follows it.
pub(crate) fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (found, content, rest) = read_tlv(input)?;
    (found == tag).then_some((content, rest))
}

/// One DER tag-length-value: (tag, content, rest). Single-byte tags only, which is all a
/// certificate's outer structure and names use.
pub(crate) fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1F == 0x1F {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let length = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7F);
        if count == 0 || count > 4 {
            return None;
        }
        let (bytes, after) = (rest.get(..count)?, rest.get(count..)?);
        rest = after;
        bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b))
    };
    let content = rest.get(..length)?;
    Some((tag, content, &rest[length..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_issued_by(names: &[(rcgen::DnType, &str)]) -> Vec<u8> {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in names {
            ca.distinguished_name.push(t.clone(), *v);
        }
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["rs.example.com".to_string()]).unwrap();
        leaf.signed_by(&key, &ca, &ca_key).unwrap().der().to_vec()
    }

    #[test]
    fn names_the_issuer() {
        let der = cert_issued_by(&[
            (rcgen::DnType::OrganizationName, "Corp"),
            (rcgen::DnType::CommonName, "Corp Inspection CA"),
            (rcgen::DnType::CountryName, "DE"),
        ]);
        assert_eq!(
            issuer_summary(&der).as_deref(),
            Some("CN=Corp Inspection CA, O=Corp")
        );
    }

    #[test]
    fn unreadable_input_gives_none() {
        let der = cert_issued_by(&[(rcgen::DnType::CommonName, "x")]);
        for cut in [0, 1, 2, 10, 40] {
            assert_eq!(issuer_summary(&der[..cut]), None, "cut at {cut}");
        }
        assert_eq!(issuer_summary(&[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]), None);
        assert_eq!(issuer_summary(b"not a certificate"), None);
        let no_names = cert_issued_by(&[(rcgen::DnType::CountryName, "DE")]);
        assert_eq!(issuer_summary(&no_names), None);
    }
}
