use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

#[test]
fn lane_messages_round_trip() {
    let frames = [
        Frame::Open {
            stream: 1,
            target: "session:abc/listener:0".into(),
            window: 0,
        },
        Frame::Data {
            stream: 1,
            payload: Bytes::from_static(b"hello"),
        },
        Frame::Close { stream: 1 },
        Frame::Reset {
            stream: 1,
            reason: ResetReason::Refused,
        },
        Frame::Ping { nonce: 7 },
    ];
    for frame in frames {
        assert_eq!(decode(encode(&frame)).unwrap(), frame);
    }
    assert_eq!(
        decode(data(b"bytes")).unwrap(),
        Frame::Data {
            stream: 1,
            payload: Bytes::from_static(b"bytes")
        }
    );
}

#[test]
fn lanes_refuse_what_they_do_not_carry() {
    let other_stream = encode(&Frame::Close { stream: 3 });
    assert_eq!(decode(other_stream), Err(LaneError::WrongStream));
    let window = encode(&Frame::Window {
        stream: 1,
        credit: 10,
    });
    assert_eq!(decode(window), Err(LaneError::NotOnLanes("Window")));
    let two =
        crate::frame::encode_message(&[Frame::Close { stream: 1 }, Frame::Close { stream: 1 }]);
    assert_eq!(decode(two), Err(LaneError::TrailingBytes));
    let too_big = {
        let mut m = BytesMut::new();
        m.put_u8(0x03);
        m.put_u32(1);
        m.put_u32(LANE_MAX_FRAME + 1);
        m.freeze()
    };
    assert!(matches!(decode(too_big), Err(LaneError::Decode(_))));
    assert!(decode(Bytes::new()).is_err());
}

#[tokio::test]
async fn bytes_cross_a_lane_both_ways_with_half_close() {
    let (a, b) = memory_pair();
    let mut a = LaneIo::new(a, None);
    let mut b = LaneIo::new(b, None);
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let sent = big.clone();
    let writer = tokio::spawn(async move {
        a.write_all(&sent).await.unwrap();
        a.shutdown().await.unwrap();
        // Half closed: the answer still arrives.
        let mut answer = Vec::new();
        a.read_to_end(&mut answer).await.unwrap();
        answer
    });
    let mut received = Vec::new();
    b.read_to_end(&mut received).await.unwrap();
    assert_eq!(received, big);
    b.write_all(b"got it").await.unwrap();
    b.shutdown().await.unwrap();
    assert_eq!(writer.await.unwrap(), b"got it");
}

#[tokio::test]
async fn a_reset_fails_the_read_with_its_reason() {
    let (a, mut b) = memory_pair();
    let mut a = LaneIo::new(a, None);
    b.send(reset(ResetReason::Refused)).await.unwrap();
    let error = a.read(&mut [0u8; 8]).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn a_waiting_reader_pings_and_pings_are_not_data() {
    let (a, mut b) = memory_pair();
    let mut a = LaneIo::new(a, Some(Duration::from_millis(40)));
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        a.read_to_end(&mut got).await.unwrap();
        got
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut pings = 0;
    for _ in 0..2 {
        let message = tokio::time::timeout(Duration::from_secs(5), b.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(matches!(decode(message), Ok(Frame::Ping { .. })));
        pings += 1;
    }
    assert_eq!(pings, 2);
    b.send(encode(&Frame::Ping { nonce: 1 })).await.unwrap();
    b.send(data(b"x")).await.unwrap();
    b.send(encode(&Frame::Close { stream: 1 })).await.unwrap();
    assert_eq!(reader.await.unwrap(), b"x");
}

#[tokio::test]
async fn a_lane_that_ends_without_close_is_an_error_not_an_end() {
    let (a, b) = memory_pair();
    let mut a = LaneIo::new(a, None);
    drop(b);
    let error = a.read(&mut [0u8; 8]).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
}

/// A buffer from `data_buffer` becomes a `Data` frame as it is, and one too large for a
/// lane frame is refused rather than sent.
#[tokio::test]
async fn a_data_buffer_is_sent_as_one_data_frame_without_a_copy() {
    let (a, mut b) = memory_pair();
    let mut a = LaneIo::new(a, None);
    let mut buffer = data_buffer(5);
    buffer.extend_from_slice(b"hello");
    let payload_at = buffer[HEADER_LEN..].as_ptr();
    std::future::poll_fn(|cx| a.poll_ready_to_send(cx))
        .await
        .unwrap();
    a.start_send_data(buffer).unwrap();
    let message = tokio::time::timeout(Duration::from_secs(10), b.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(message, data(b"hello"));
    assert_eq!(
        message[HEADER_LEN..].as_ptr(),
        payload_at,
        "the bytes were not copied"
    );

    let mut too_large = data_buffer(0);
    too_large.resize(HEADER_LEN + LANE_MAX_FRAME as usize + 1, 0);
    let error = a.start_send_data(too_large).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
}
