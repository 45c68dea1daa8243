//! The relay in `portico serve` with raw clients: two endpoints (a Device Endpoint in
//! front of a TCP echo server, a Service Endpoint bound to a user) register, connect
//! their tunnels (`/mts/`) and control channels (`/ccf/`) over TLS to the `wss` host, a
//! connection session opened through the API with the Service Endpoint's own token is
//! announced to both (`connect`, `permit`), a stream the service opens reaches the echo
//! server through the device, ending the session is announced to both, revoking the device
//! cuts it at once, and stopping `serve` ends the remaining tunnel with `GoAway(shutting
//! down)`.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use bytes::Bytes;
use futures_util::{future, SinkExt, StreamExt};
use portico_tunnel::control::{ControlMessage, DisconnectReason, RefusalReason, CONTROL_VERSION};
use portico_tunnel::lane::{
    self,
    framed::{self, FramedLane},
};
use portico_tunnel::{Frame, GoAwayReason, Role, Tunnel, TunnelConfig, TunnelError, TunnelHandle};
use serde_json::Value;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:{tls}"
listen_plain = "127.0.0.1:{plain}"
admin_listen = "127.0.0.1:{admin}"
"#;
const HOST: &str = "acme-shop.eu1.portico.localhost";
const WSS: &str = "wss.eu1.vpnrts.portico.localhost";
const CONNECTIVITY: &str = "connectivity.eu1.vpnrts.portico.localhost";
const PASSWORD: &str = "correct horse battery staple";
const LIMIT: Duration = Duration::from_secs(10);

type Ws = WebSocketStream<TlsStream<TcpStream>>;

/// Signs `user` in on the app; the cookie header to send and the CSRF token.
fn sign_in(portico: &Portico, user: &str) -> (String, String) {
    sign_in_on(portico.plain, HOST, user, PASSWORD)
}

/// A JSON call to the API on the app's host, in `who`'s session.
fn call(portico: &Portico, who: &(String, String), method: &str, path: &str, body: &str) -> Value {
    let url = format!(
        "http://127.0.0.1:{}/api/remoteservices/v1{path}",
        portico.plain
    );
    let origin = format!("Origin: http://{HOST}");
    let host = format!("Host: {HOST}");
    let xsrf = format!("X-XSRF-TOKEN: {}", who.1);
    let mut args = vec![
        "-X", method, "-H", &host, "-H", &who.0, "-H", &origin, "-H", &xsrf,
    ];
    if !body.is_empty() {
        args.extend(["-H", "Content-Type: application/json", "-d", body]);
    }
    args.push(&url);
    let (status, text) = curl(&args);
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {text}"
    );
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Makes endpoint `body` and registers it; its client-credentials access token.
fn endpoint_token(portico: &Portico, ada: &(String, String), body: &str) -> String {
    let created = call(portico, ada, "POST", "/endpoints", body);
    let code = created["registration_code"].as_str().unwrap();
    let register = format!(
        "http://127.0.0.1:{}/api/endpointregistration/v1/register",
        portico.plain
    );
    let form = format!(r#"{{"code":"{code}"}}"#);
    let (status, credentials) = curl(&[
        "-H",
        "Host: gateway.eu1.portico.localhost",
        "-H",
        "Content-Type: application/json",
        "-d",
        &form,
        &register,
    ]);
    assert_eq!(status, 200, "{credentials}");
    let credentials: Value = serde_json::from_str(&credentials).unwrap();
    let basic = format!(
        "{}:{}",
        credentials["client_id"].as_str().unwrap(),
        credentials["client_secret"].as_str().unwrap()
    );
    let token_url = format!("http://127.0.0.1:{}/uaa/oauth/token", portico.plain);
    let host = format!("Host: {CONNECTIVITY}");
    let (status, token) = curl(&[
        "-H",
        &host,
        "-u",
        &basic,
        "-d",
        "grant_type=client_credentials",
        &token_url,
    ]);
    assert_eq!(status, 200, "{token}");
    let token: Value = serde_json::from_str(&token).unwrap();
    token["access_token"].as_str().unwrap().to_string()
}

/// A WebSocket to `path` of the `wss` host over TLS (trusting the development CA), with
/// SNI and Host naming the `wss` host while the TCP connection goes to 127.0.0.1.
async fn socket(portico: &Portico, path: &str, token: Option<&str>) -> Result<Ws, WsError> {
    Ok(socket_answered(portico, path, token).await?.0)
}

/// As [`socket`], with the headers of the `101` answer.
async fn socket_answered(
    portico: &Portico,
    path: &str,
    token: Option<&str>,
) -> Result<(Ws, http::HeaderMap), WsError> {
    let tls = tls_to(portico, WSS).await;
    let url = format!("wss://{WSS}:{}{path}", portico.tls);
    let mut request = url.into_client_request().unwrap();
    if let Some(token) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    let (ws, answer) = tokio_tungstenite::client_async(request, tls).await?;
    Ok((ws, answer.headers().clone()))
}

/// A framed lane to `path` of the `wss` host: the HTTP/1.1 upgrade to `portico-lane`
/// written and read as bytes, then the lane's frames on the same connection.
async fn framed_lane(
    portico: &Portico,
    path: &str,
    token: &str,
) -> FramedLane<TlsStream<TcpStream>> {
    let mut tls = tls_to(portico, WSS).await;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {WSS}:{}\r\nAuthorization: Bearer {token}\r\n\
         Connection: Upgrade\r\nUpgrade: portico-lane\r\n\r\n",
        portico.tls
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let head_end = loop {
        if let Some(at) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        assert!(answer.len() < 16 * 1024, "no end of the answer's head");
        let mut piece = [0u8; 1024];
        let n = tokio::time::timeout(LIMIT, tls.read(&mut piece))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "the relay closed before answering");
        answer.extend_from_slice(&piece[..n]);
    };
    let head = String::from_utf8_lossy(&answer[..head_end]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: portico-lane\r\n"), "{head}");
    FramedLane::new(tls, Bytes::copy_from_slice(&answer[head_end..]))
}

/// An endpoint's tunnel over `/mts/`; streams the relay opens are dialled if `dials`.
async fn tunnel(portico: &Portico, token: &str, role: Role, dials: bool) -> TunnelHandle {
    let (ws, answer) = socket_answered(portico, "/mts/", Some(token))
        .await
        .unwrap();
    // The relay offers lanes beside the tunnel (`portico_tunnel::lane::LANES_OFFERED`), as
    // WebSockets and as framed lanes.
    for offer in [lane::LANES_OFFERED, framed::OFFERED] {
        assert_eq!(answer.get(offer).map(|v| v.as_bytes()), Some(&b"1"[..]));
    }
    // Moving streams is agreed only with an agent that asks (this client does not).
    assert_eq!(answer.get(lane::MOVES_OFFERED), None);
    let transport = ws
        .with(|bytes: Bytes| future::ready(Ok::<_, WsError>(Message::Binary(bytes))))
        .filter_map(|m| {
            future::ready(match m {
                Ok(Message::Binary(b)) => Some(Ok(b)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
        });
    let (handle, mut incoming) = Tunnel::new(transport, role, TunnelConfig::default());
    tokio::spawn(async move {
        while let Some(stream) = incoming.next().await {
            if !dials {
                stream.refuse(portico_tunnel::ResetReason::Refused);
                continue;
            }
            let target = stream.target().to_string();
            tokio::spawn(async move {
                let Ok(mut tcp) = TcpStream::connect(&target).await else {
                    return;
                };
                let mut stream = stream.accept();
                let _ = tokio::io::copy_bidirectional(&mut stream, &mut tcp).await;
            });
        }
    });
    handle
}

/// A control channel: says hello and returns the socket with the relay's first answer.
async fn control(portico: &Portico, token: &str, role: Role, name: &str) -> (Ws, ControlMessage) {
    let mut ws = socket(portico, "/ccf/", Some(token)).await.unwrap();
    let hello = ControlMessage::Hello {
        version: CONTROL_VERSION,
        role,
        endpoint: name.into(),
        agent: "portico test".into(),
    };
    ws.send(Message::text(hello.encode())).await.unwrap();
    let first = next(&mut ws).await;
    (ws, first)
}

/// The next control message other than a keep-alive.
async fn next(ws: &mut Ws) -> ControlMessage {
    loop {
        let message = tokio::time::timeout(LIMIT, ws.next())
            .await
            .expect("a control message in time")
            .expect("the control channel is open")
            .unwrap();
        if let Message::Text(text) = message {
            match ControlMessage::decode(text.as_bytes()).unwrap() {
                ControlMessage::KeepAlive { .. } => continue,
                other => return other,
            }
        }
    }
}

/// A TCP echo server on a loopback port.
async fn echo_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = conn.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    port
}

#[test]
fn endpoints_get_their_sessions_carry_bytes_are_cut_when_revoked_and_told_of_shutdown() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let portico = Portico::start(CONFIG, &[]);
    let echo = rt.block_on(echo_server());
    acme_shop_with_users(&portico, &[("ada", "admin")], PASSWORD);
    let ada = sign_in(&portico, "ada");
    let ready = within(LIMIT, || {
        let url = format!(
            "http://127.0.0.1:{}/api/remoteservices/v1/sites",
            portico.plain
        );
        let host = format!("Host: {HOST}");
        curl(&["-H", &host, "-H", &ada.0, &url]).0 == 200
    });
    assert!(ready.is_some(), "the API did not come up");
    call(&portico, &ada, "POST", "/sites", r#"{"name":"plant"}"#);
    call(
        &portico,
        &ada,
        "POST",
        "/devices",
        r#"{"name":"press-7","site":"plant"}"#,
    );
    let app = format!(
        r#"{{"name":"echo","template":"tcp","mappings":[{{"local_port":2222,"target_host":"127.0.0.1","target_port":{echo}}}]}}"#
    );
    call(&portico, &ada, "POST", "/applications", &app);
    call(
        &portico,
        &ada,
        "POST",
        "/assignments",
        r#"{"device":"press-7","application":"echo"}"#,
    );
    let device = endpoint_token(
        &portico,
        &ada,
        r#"{"name":"ep-press","kind":"device","device":"press-7"}"#,
    );
    let service = endpoint_token(
        &portico,
        &ada,
        r#"{"name":"ep-ada","kind":"service","user":"ada"}"#,
    );

    // No token: 401 before the upgrade; a hello naming another endpoint: refused.
    let refused = rt.block_on(socket(&portico, "/mts/", None));
    match refused {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    // A lane of an endpoint whose tunnel is not here: refused before the upgrade.
    match rt.block_on(socket(&portico, "/mts/lane/dial", Some(&device))) {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 421),
        other => panic!("expected 421, got {:?}", other.map(|_| ())),
    }
    let (_, answer) = rt.block_on(control(&portico, &device, Role::Device, "ep-ada"));
    assert!(
        matches!(
            answer,
            ControlMessage::Refused {
                reason: RefusalReason::Unauthorized,
                ..
            }
        ),
        "{answer:?}"
    );

    // Both endpoints online: tunnels first, then control channels.
    let device_tunnel = rt.block_on(tunnel(&portico, &device, Role::Device, true));
    let service_tunnel = rt.block_on(tunnel(&portico, &service, Role::Service, false));
    let (mut device_control, welcome) =
        rt.block_on(control(&portico, &device, Role::Device, "ep-press"));
    assert!(
        matches!(welcome, ControlMessage::Welcome { .. }),
        "{welcome:?}"
    );
    let (mut service_control, welcome) =
        rt.block_on(control(&portico, &service, Role::Service, "ep-ada"));
    assert!(
        matches!(welcome, ControlMessage::Welcome { .. }),
        "{welcome:?}"
    );

    // The API tells who is online, from the relay's directory of tunnels.
    let online = || call(&portico, &ada, "GET", "/endpoints/ep-press", "");
    assert!(
        within(LIMIT, || online()["online"] == true).is_some(),
        "{}",
        online()
    );
    assert!(online()["online_since_ms"].as_i64().unwrap() > 0);
    let press = call(&portico, &ada, "GET", "/devices/press-7", "");
    assert_eq!(press["online"], true, "{press}");

    // The Service Endpoint opens a session as its user, with its own token.
    let url = format!(
        "http://127.0.0.1:{}/api/remoteservices/v1/connections",
        portico.plain
    );
    let bearer = format!("Authorization: Bearer {service}");
    let (status, opened) = curl(&[
        "-H",
        "Host: gateway.eu1.portico.localhost",
        "-H",
        &bearer,
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"device":"press-7","application":"echo"}"#,
        &url,
    ]);
    assert_eq!(status, 201, "{opened}");
    let opened: Value = serde_json::from_str(&opened).unwrap();
    let id = opened["id"].as_str().unwrap().to_string();
    assert_eq!(opened["user_name"], "ada");

    let target = format!("session:{id}/listener:0");
    match rt.block_on(next(&mut service_control)) {
        ControlMessage::Connect {
            session, listeners, ..
        } => {
            assert_eq!(session, id);
            assert_eq!(
                (listeners[0].local_port, listeners[0].target.as_str()),
                (2222, target.as_str())
            );
        }
        other => panic!("expected connect, got {other:?}"),
    }
    match rt.block_on(next(&mut device_control)) {
        ControlMessage::Permit {
            session, targets, ..
        } => {
            assert_eq!(
                (session, targets),
                (id.clone(), vec![format!("127.0.0.1:{echo}")])
            );
        }
        other => panic!("expected permit, got {other:?}"),
    }

    // A stream from the service reaches the echo server through the device, both ways.
    rt.block_on(async {
        let mut stream = service_tunnel.open(&target).unwrap();
        stream.write_all(b"through the relay").await.unwrap();
        let mut back = [0u8; 17];
        tokio::time::timeout(LIMIT, stream.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&back, b"through the relay");
    });

    // The same over lanes: the device keeps a dial lane, the service opens on an open lane;
    // the relay asks the device on its lane for the permitted target, and bytes come back.
    rt.block_on(async {
        let binary = |m: Option<Result<Message, WsError>>| match m {
            Some(Ok(Message::Binary(b))) => lane::decode(b).unwrap(),
            other => panic!("expected a lane message, got {other:?}"),
        };
        let mut device_lane = socket(&portico, "/mts/lane/dial", Some(&device))
            .await
            .unwrap();
        let mut service_lane = socket(&portico, "/mts/lane/open", Some(&service))
            .await
            .unwrap();
        service_lane
            .send(Message::Binary(lane::open(&target)))
            .await
            .unwrap();
        service_lane
            .send(Message::Binary(lane::data(b"on a lane")))
            .await
            .unwrap();
        let open = tokio::time::timeout(LIMIT, device_lane.next())
            .await
            .unwrap();
        let Frame::Open { target: dial, .. } = binary(open) else {
            panic!("expected an Open on the device's lane");
        };
        assert_eq!(dial, format!("127.0.0.1:{echo}"));
        let data = tokio::time::timeout(LIMIT, device_lane.next())
            .await
            .unwrap();
        let Frame::Data { payload, .. } = binary(data) else {
            panic!("expected the service's bytes");
        };
        device_lane
            .send(Message::Binary(lane::data(&payload)))
            .await
            .unwrap();
        let back = tokio::time::timeout(LIMIT, service_lane.next())
            .await
            .unwrap();
        assert_eq!(
            binary(back),
            Frame::Data {
                stream: lane::LANE_STREAM,
                payload: Bytes::from_static(b"on a lane")
            }
        );
    });

    // The same over framed lanes (`portico_tunnel::lane::framed`), and with one side's lane
    // a WebSocket: the relay joins the two kinds as it joins two of one kind.
    rt.block_on(async {
        let frame = |m: Option<std::io::Result<Bytes>>| lane::decode(m.unwrap().unwrap()).unwrap();
        for service_framed in [true, false] {
            let mut device_lane = framed_lane(&portico, "/mts/lane/dial", &device).await;
            let mut service_lane: lane::BoxLane = match service_framed {
                true => Box::pin(framed_lane(&portico, "/mts/lane/open", &service).await),
                false => {
                    let ws = socket(&portico, "/mts/lane/open", Some(&service))
                        .await
                        .unwrap();
                    Box::pin(
                        ws.with(|b: Bytes| future::ready(Ok::<_, WsError>(Message::Binary(b))))
                            .filter_map(|m| {
                                future::ready(match m {
                                    Ok(Message::Binary(b)) => Some(Ok(b)),
                                    Ok(_) => None,
                                    Err(e) => Some(Err(std::io::Error::other(e))),
                                })
                            })
                            .sink_map_err(std::io::Error::other),
                    )
                }
            };
            service_lane.send(lane::open(&target)).await.unwrap();
            let payload = vec![7u8; 300 * 1024];
            for piece in payload.chunks(lane::LANE_PIECE) {
                service_lane.send(lane::data(piece)).await.unwrap();
            }
            let open = tokio::time::timeout(LIMIT, device_lane.next())
                .await
                .unwrap();
            let Frame::Open { target: dial, .. } = frame(open) else {
                panic!("expected an Open on the device's framed lane");
            };
            assert_eq!(dial, format!("127.0.0.1:{echo}"));
            let mut got = 0;
            while got < payload.len() {
                let data = tokio::time::timeout(LIMIT, device_lane.next())
                    .await
                    .unwrap();
                let Frame::Data { payload: piece, .. } = frame(data) else {
                    panic!("expected the service's bytes");
                };
                assert!(piece.iter().all(|&b| b == 7));
                got += piece.len();
            }
            assert_eq!(got, payload.len(), "framed: {service_framed}");
            device_lane
                .send(lane::data(b"back on a framed lane"))
                .await
                .unwrap();
            let back = tokio::time::timeout(LIMIT, service_lane.next())
                .await
                .unwrap();
            assert_eq!(
                lane::decode(back.unwrap().unwrap()).unwrap(),
                Frame::Data {
                    stream: lane::LANE_STREAM,
                    payload: Bytes::from_static(b"back on a framed lane")
                }
            );
        }
    });

    // The user ends the session with the endpoint's token: both sides hear it.
    let (status, ended) = curl(&[
        "-X",
        "DELETE",
        "-H",
        "Host: gateway.eu1.portico.localhost",
        "-H",
        &bearer,
        &format!("{url}/{id}"),
    ]);
    assert_eq!(status, 200, "{ended}");
    for control in [&mut service_control, &mut device_control] {
        let said = rt.block_on(next(control));
        assert_eq!(
            said,
            ControlMessage::Disconnect {
                session: id.clone(),
                reason: DisconnectReason::Ended
            }
        );
    }

    // Revoking the device cuts its control channel and its tunnel at once.
    call(&portico, &ada, "POST", "/endpoints/ep-press/revoke", "");
    let answer = rt.block_on(next(&mut device_control));
    assert!(
        matches!(
            answer,
            ControlMessage::Refused {
                reason: RefusalReason::Revoked,
                ..
            }
        ),
        "{answer:?}"
    );
    let end = rt.block_on(async {
        tokio::time::timeout(LIMIT, device_tunnel.closed())
            .await
            .unwrap()
    });
    assert!(
        matches!(end, TunnelError::GoAway(GoAwayReason::Revoked)),
        "{end:?}"
    );
    let after = call(&portico, &ada, "GET", "/endpoints/ep-press", "");
    assert_eq!(after["online"], false, "{after}");
    assert!(after["online_since_ms"].is_null(), "{after}");
    let device = call(&portico, &ada, "GET", "/devices/press-7", "");
    assert_eq!(device["online"], false, "{device}");
    drop(portico);
}
