//! An HTTP "ticket" server on the service side (a python3 `http.server` subclass): it
//! records the path and body of every POST, one JSON line each, in its folder, and
//! answers `201 {"ticket": N}`; a GET answers `200 ticket server`. A process rather than
//! a thread so it can run inside a network namespace too; the record is a file, which
//! every namespace shares.

use super::{missing, port_taken, program, Place, Process};
use crate::support::free_port;

const SERVER: &str = r#"
import json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

bind, port, record = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()
count = 0

class Tickets(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.answer(200, "ticket server")

    def do_POST(self):
        global count
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace")
        with lock:
            count += 1
            number = count
            with open(record, "a") as out:
                out.write(json.dumps({"path": self.path, "body": body}) + "\n")
        self.answer(201, json.dumps({"ticket": number}))

    def log_message(self, format, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), format % args))

ThreadingHTTPServer((bind, port), Tickets).serve_forever()
"#;

/// One POST the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub path: String,
    pub body: String,
}

pub struct TicketServer {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub place: Place,
    process: Process,
}

impl TicketServer {
    /// A ticket server on a free loopback port.
    pub fn start() -> Option<TicketServer> {
        Self::start_in(Place::loopback())
    }

    pub fn start_in(place: Place) -> Option<TicketServer> {
        let python = program("python3", &["/usr/bin/python3"], "apt-get install python3")?;
        let mut last = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let script = dir.path().join("tickets.py");
            std::fs::write(&script, SERVER).unwrap();
            let port = free_port();
            let mut command = place.command(&python);
            command
                .arg(&script)
                .arg(place.bind.to_string())
                .arg(port.to_string())
                .arg(dir.path().join("tickets.jsonl"));
            let mut process = Process::spawn("ticket server", command, &dir.path().join("log"));
            match process.wait_accepts(&place, port) {
                Ok(()) => {
                    return Some(TicketServer {
                        dir,
                        port,
                        place,
                        process,
                    })
                }
                Err(log) if port_taken(&log) => last = log,
                Err(log) => panic!("{log}"),
            }
        }
        missing(&format!("the ticket server found no free port: {last}"));
        None
    }

    /// `http://127.0.0.1:port/path` (for a server on the host).
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every POST so far, in order.
    pub fn tickets(&self) -> Vec<Ticket> {
        let text =
            std::fs::read_to_string(self.dir.path().join("tickets.jsonl")).unwrap_or_default();
        text.lines()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                Ticket {
                    path: value["path"].as_str().unwrap_or_default().to_string(),
                    body: value["body"].as_str().unwrap_or_default().to_string(),
                }
            })
            .collect()
    }

    /// The requests the server logged.
    pub fn log(&self) -> String {
        self.process.output()
    }
}
