//! The built-in catalogue of Protocol Application templates (RS-3). A named Protocol
//! Application is made from one of these; the template gives its default port and whether
//! the device side dials (forward) or listens (DTT Reverse).

use serde::Serialize;

/// Which side of a connection dials the targets of an application's port mappings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The Service Endpoint listens, the Device Endpoint dials (RS-4).
    Forward,
    /// The Device Endpoint listens, the application's target Service Endpoint dials (RS-5).
    Reverse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Template {
    /// What applications name as their `template`.
    pub id: &'static str,
    pub name: &'static str,
    /// The protocol's usual port; `None` for generic TCP.
    pub default_port: Option<u16>,
    pub direction: Direction,
}

const fn forward(id: &'static str, name: &'static str, port: u16) -> Template {
    Template {
        id,
        name,
        default_port: Some(port),
        direction: Direction::Forward,
    }
}

/// The template id of DTT Reverse.
pub const DTT_REVERSE: &str = "dtt-reverse";

pub const TEMPLATES: &[Template] = &[
    forward("ssh", "SSH", 22),
    forward("rdp", "RDP", 3389),
    forward("vnc", "VNC", 5900),
    forward("http", "HTTP", 80),
    forward("https", "HTTPS", 443),
    forward("telnet", "Telnet", 23),
    forward("modbus-tcp", "Modbus TCP", 502),
    forward("opc-ua", "OPC UA", 4840),
    forward("s7", "S7", 102),
    Template {
        id: "tcp",
        name: "Generic TCP",
        default_port: None,
        direction: Direction::Forward,
    },
    Template {
        id: DTT_REVERSE,
        name: "DTT Reverse",
        default_port: None,
        direction: Direction::Reverse,
    },
];

/// The template with this id.
pub fn template(id: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_has_the_specified_templates_with_unique_ids() {
        let ports: Vec<_> = TEMPLATES.iter().map(|t| (t.id, t.default_port)).collect();
        assert_eq!(ports.len(), 11);
        for (id, port) in [
            ("ssh", 22),
            ("rdp", 3389),
            ("vnc", 5900),
            ("http", 80),
            ("https", 443),
            ("telnet", 23),
            ("modbus-tcp", 502),
            ("opc-ua", 4840),
            ("s7", 102),
        ] {
            assert_eq!(
                template(id).and_then(|t| t.default_port),
                Some(port),
                "{id}"
            );
        }
        let mut ids: Vec<_> = TEMPLATES.iter().map(|t| t.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), TEMPLATES.len());
        assert_eq!(
            template(DTT_REVERSE).map(|t| t.direction),
            Some(Direction::Reverse)
        );
        assert!(template("SSH").is_none());
    }
}
