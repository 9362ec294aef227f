//! One DNS request answered: the zone's answer (or the upstream's, forwarded) put in
//! a response with hickory-server's message builder. hickory-server's TCP listener
//! calls it through [`Shared`]; the UDP loop (`crate::udp`) calls
//! [`Handler::respond`] with the zone snapshot its answer cache is valid for.

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::{Name, Record};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use crate::answer::{Outcome, answer_as};
use crate::config::{AppSubnet, DnsConfig, EDNS_PAYLOAD};
use crate::forward::forward;
use crate::zone::Zone;

/// Answers requests on one listener.
pub(crate) struct Handler {
    pub(crate) zone: Arc<ArcSwap<Zone>>,
    pub(crate) config: DnsConfig,
    /// An app network this listener serves.
    pub(crate) subnet: Option<(Arc<str>, AppSubnet)>,
    /// The server's query counts.
    pub(crate) stats: Arc<crate::stats::QueryStats>,
}

impl Handler {
    /// Which app's sandbox asks from `ip`: in this listener's app network, that app;
    /// elsewhere, whoever the zone says has the address (`None`: an outsider).
    pub(crate) fn caller<'z>(&'z self, zone: &'z Zone, ip: IpAddr) -> Option<&'z str> {
        match &self.subnet {
            Some((app, net)) if net.contains(ip) => Some(app),
            _ => zone.caller(ip),
        }
    }

    /// Answers `request` from `zone` through `response`.
    pub(crate) async fn respond<R: ResponseHandler>(
        &self,
        zone: &Zone,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let edns = request.edns.as_ref().map(|_| {
            let mut e = Edns::new();
            e.set_max_payload(EDNS_PAYLOAD);
            e
        });
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(e) = &edns {
            builder.edns(e);
        }
        let mut meta = Metadata::response_from_request(&request.metadata);
        let info = match request.request_info() {
            Ok(info)
                if request.metadata.op_code == OpCode::Query
                    && request.metadata.message_type == MessageType::Query =>
            {
                info
            }
            Ok(_) => return send_code(response, builder, meta, ResponseCode::NotImp).await,
            Err(_) => return send_code(response, builder, meta, ResponseCode::FormErr).await,
        };
        let qname = Name::from(info.query.name());
        let caller = self.caller(zone, info.src.ip());
        let outcome = answer_as(zone, &qname, info.query.query_type(), caller);
        let sent = match outcome {
            Outcome::Reply(r) => {
                meta.authoritative = r.code != ResponseCode::Refused;
                meta.response_code = r.code;
                let msg = builder.build(
                    meta,
                    &r.answers,
                    &r.authority,
                    &[] as &[Record],
                    &r.additionals,
                );
                response.send_response(msg).await
            }
            Outcome::Forward => {
                self.stats.forwarded();
                match forward(
                    request.as_slice(),
                    self.config.upstream,
                    self.config.forward_timeout,
                )
                .await
                {
                    Ok(up) => {
                        meta.response_code = up.metadata.response_code;
                        meta.recursion_available = up.metadata.recursion_available;
                        meta.authentic_data = up.metadata.authentic_data;
                        let msg = builder.build(
                            meta,
                            &up.answers,
                            &up.authorities,
                            &[] as &[Record],
                            &up.additionals,
                        );
                        response.send_response(msg).await
                    }
                    Err(e) => {
                        tracing::debug!("forwarding {qname} for {}: {e}", info.src);
                        return send_code(response, builder, meta, ResponseCode::ServFail).await;
                    }
                }
            }
        };
        sent.unwrap_or_else(|e| {
            tracing::debug!("answering {}: {e}", info.src);
            failed(&request.metadata)
        })
    }
}

/// A handler shared by hickory-server's listeners and the UDP loop.
pub(crate) struct Shared(pub(crate) Arc<Handler>);

#[async_trait::async_trait]
impl RequestHandler for Shared {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response: R,
    ) -> ResponseInfo {
        let zone = self.0.zone.load();
        let info = self.0.respond(&zone, request, response).await;
        self.0
            .stats
            .answered(u16::from(info.response_code).min(255) as u8);
        info
    }
}

async fn send_code<R: ResponseHandler>(
    mut response: R,
    builder: MessageResponseBuilder<'_>,
    mut meta: Metadata,
    code: ResponseCode,
) -> ResponseInfo {
    meta.response_code = code;
    let id = meta.id;
    let op = meta.op_code;
    match response.send_response(builder.build_no_records(meta)).await {
        Ok(info) => info,
        Err(_) => failed(&Metadata::new(id, MessageType::Query, op)),
    }
}

fn failed(req: &Metadata) -> ResponseInfo {
    let mut metadata = Metadata::new(req.id, MessageType::Response, req.op_code);
    metadata.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}
