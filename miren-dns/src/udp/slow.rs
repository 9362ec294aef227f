//! A datagram the whole way: decoded by hickory, answered by [`Handler::respond`],
//! encoded as hickory-server's UDP listener encodes it (the size limit the client's
//! EDNS allows, else 512 bytes), with its treatment of what is not a query: nothing
//! back for a message shorter than a header or a response, FORMERR for one that does
//! not decode. The bytes come back to the loop, which sends them and may keep them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use hickory_server::net::NetError;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{
    Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::Record;
use hickory_server::proto::serialize::binary::{
    BinDecodable, BinDecoder, BinEncodable, BinEncoder,
};
use hickory_server::server::{Request, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder, Queries};

use crate::handler::Handler;
use crate::zone::Zone;

/// The response to `packet` from `src`, if it gets one.
pub(crate) async fn answer(
    handler: &Handler,
    zone: &Zone,
    packet: &[u8],
    src: SocketAddr,
) -> Option<Vec<u8>> {
    let header = Header::read(&mut BinDecoder::new(packet)).ok()?;
    let capture = Capture::default();
    match Request::from_bytes(packet.to_vec(), src, Protocol::Udp) {
        Ok(request) if request.metadata.message_type == MessageType::Response => return None,
        Ok(request) => {
            handler.respond(zone, &request, capture.clone()).await;
        }
        Err(e) => {
            tracing::debug!("undecodable query from {src}: {e}");
            let queries = Queries::read(&mut BinDecoder::new(&[]), 0).ok()?;
            let msg = MessageResponseBuilder::new(&queries, None)
                .error_msg(&header, ResponseCode::FormErr);
            let mut capture = capture.clone();
            capture.send_response(msg).await.ok()?;
        }
    }
    capture.take()
}

/// A response handler that keeps the encoded response.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Option<Vec<u8>>>>);

impl Capture {
    fn take(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let id = response.metadata().id;
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(response.edns().map_or(512, |e| e.max_payload()));
        let info = match response.destructive_emit(&mut encoder) {
            Ok(info) => info,
            Err(e) => {
                tracing::error!("encoding a DNS response: {e}");
                bytes.clear();
                let mut encoder = BinEncoder::new(&mut bytes);
                encoder.set_max_size(512);
                let mut metadata = Metadata::new(id, MessageType::Response, OpCode::Query);
                metadata.response_code = ResponseCode::ServFail;
                let header = Header {
                    metadata,
                    counts: HeaderCounts::default(),
                };
                header.emit(&mut encoder)?;
                ResponseInfo::from(header)
            }
        };
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(bytes);
        Ok(info)
    }
}
