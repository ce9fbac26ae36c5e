//! Reading frame bodies from QUIC streams without zero-filling a buffer first: the body is assembled from
//! the chunks quinn already holds, one copy.

/// Reads exactly `len` bytes (a frame body whose length prefix was checked) from `recv`.
pub async fn read_body(recv: &mut quinn::RecvStream, len: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::with_capacity(len);
    while body.len() < len {
        match recv.read_chunk(len - body.len(), true).await.map_err(|e| e.to_string())? {
            Some(chunk) => body.extend_from_slice(&chunk.bytes),
            None => return Err(format!("stream ended {} bytes into a {len}-byte frame", body.len())),
        }
    }
    Ok(body)
}
